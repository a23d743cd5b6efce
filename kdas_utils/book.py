"""``make book``: the series as a website, built with Sphinx, MyST-NB and the book theme.

    python -m kdas_utils.book [--out runs/book]

Why these tools: MyST-NB renders the notebooks as they were executed (no second execution), with
their figures and widget outputs; the book theme gives the sidebar of lessons, search and a Colab /
Binder launch button on each lesson page; Sphinx builds the command-line reference from the
argparse parser (``sphinx-argparse``) and the API reference from the docstrings (``autodoc``), and
``-W`` makes every warning (a broken link, a missing image) an error. Jupyter Book 1 is the same
stack behind a wrapper; Jupyter Book 2 needs Node.js. MathJax comes with the site (from the
``jupyter-server-mathjax`` package), not from a CDN: the formulas render offline and from disk.

The build reads a staging folder, ``<out>-src/``, that holds ``docs/`` (the pages, which GitHub
shows as well), ``results/`` (the figures and tables they link) and ``notebooks/``: for each lesson,
``make tutorial``'s executed copy (``runs/notebooks/``, figures inline) where it is at least as new
as the lesson, else the committed notebook (text outputs only). Links from the pages to other files
of the repository become links to the file on GitHub (:data:`kdas_utils.config.REPOSITORY`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import jupyter_server_mathjax

from .config import project_root, runs_dir

STAGED = ("docs", "results")
REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>KDAS notebooks</title>
<meta http-equiv="refresh" content="0; url=docs/index.html"><link rel="canonical" href="docs/index.html">
<link rel="icon" href="_static/favicon.svg" type="image/svg+xml">
</head><body><p><a href="docs/index.html">KDAS notebooks</a></p></body></html>
"""


def lesson_sources(root: Path | None = None, executed: Path | None = None) -> dict[str, Path]:
    """``{notebook name: the file the book takes}``: the executed copy under ``executed`` (default
    ``runs/notebooks``) when it exists and is at least as new as the lesson, else the lesson itself."""
    root = root or project_root()
    executed = executed or runs_dir() / "notebooks"
    chosen = {}
    for lesson in sorted((root / "notebooks").glob("*.ipynb")):
        run = executed / lesson.name
        fresh = run.is_file() and run.stat().st_mtime >= lesson.stat().st_mtime
        chosen[lesson.name] = run if fresh else lesson
    return chosen


MATHJAX = "_mathjax"  # the staging folder whose mathjax/ Sphinx copies to the site's _static/


def mathjax_folder() -> Path:
    """MathJax 2.7's files as the ``jupyter-server-mathjax`` package ships them (the ``book`` extra): the book
    serves them itself, so its formulas render without a network, also when opened from disk."""
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def stage(source: Path, root: Path | None = None, executed: Path | None = None) -> dict[str, Path]:
    """Fill ``source`` (emptied first) with what the book is built from; returns :func:`lesson_sources`."""
    root = root or project_root()
    if source.exists():
        shutil.rmtree(source)
    for name in STAGED:
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("conf.py", "_build"))
    shutil.copy(root / "docs" / "conf.py", source / "conf.py")
    shutil.copytree(mathjax_folder(), source / MATHJAX / "mathjax")  # -> _static/mathjax/ of the site
    (source / "notebooks").mkdir()
    lessons = lesson_sources(root, executed)
    for name, path in lessons.items():
        shutil.copy(path, source / "notebooks" / name)
    return lessons


def build(out: Path, executed: Path | None = None) -> Path:
    """Stage and build the book into ``out``; warnings are errors. Returns ``out / "index.html"``.

    Raises:
        RuntimeError: Sphinx failed; the message holds the end of its log.
    """
    source = out.with_name(out.name + "-src")
    lessons = stage(source, executed=executed)
    fresh = sum(path.parent != project_root() / "notebooks" for path in lessons.values())
    print(f"book: {fresh} of {len(lessons)} lessons from executed notebooks (runs/notebooks), the rest as committed")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sphinx-build failed ({result.returncode}):\n{(result.stdout + result.stderr)[-6000:]}")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ and _images/ as they are
    (out / "index.html").write_text(REDIRECT)  # the site's address opens the book's first page
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdas_utils.book", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=runs_dir() / "book", help="output folder (default runs/book)")
    parser.add_argument("--executed", type=Path, help="executed notebooks (default runs/notebooks)")
    args = parser.parse_args(argv)
    try:
        index = build(args.out.resolve(), args.executed)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"book written: {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
