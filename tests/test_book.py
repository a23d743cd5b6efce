"""The book (``make book``): which notebook each lesson page is built from, the pages it is built
from, and the Pages workflow. The build itself, opened in Chromium, is in ``test_browser.py``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import yaml

from kdas_utils.book import lesson_sources, stage

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md"))


def test_each_lesson_comes_from_its_executed_copy_only_when_that_is_up_to_date(tmp_path):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    executed = tmp_path / "runs" / "notebooks"
    executed.mkdir(parents=True)
    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        (root / "notebooks" / name).write_text("{}")
    (executed / "01_a.ipynb").write_text("{}")  # executed after the lesson was written
    (executed / "02_b.ipynb").write_text("{}")
    os.utime(executed / "02_b.ipynb", (1, 1))  # executed before the lesson changed: stale
    chosen = lesson_sources(root, executed)
    assert chosen == {
        "01_a.ipynb": executed / "01_a.ipynb",
        "02_b.ipynb": root / "notebooks" / "02_b.ipynb",
        "03_c.ipynb": root / "notebooks" / "03_c.ipynb",
    }


def test_the_staging_folder_holds_the_pages_results_and_lessons(tmp_path):
    lessons = stage(tmp_path / "src", executed=tmp_path / "none")
    assert (tmp_path / "src" / "conf.py").is_file() and not (tmp_path / "src" / "docs" / "conf.py").exists()
    assert sorted(p.name for p in (tmp_path / "src" / "notebooks").iterdir()) == sorted(lessons)
    assert (tmp_path / "src" / "results" / "tutorial_times.json").is_file()
    shutil.rmtree(tmp_path / "src")


def test_the_pages_workflow_builds_with_make_book():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    steps = [step.get("run", "") for step in workflow["jobs"]["build"]["steps"]]
    assert "make tutorial" in steps and "make book" in steps
    assert steps.index("make tutorial") < steps.index("make book")
    uploads = [s for s in workflow["jobs"]["build"]["steps"] if "upload-pages-artifact" in s.get("uses", "")]
    assert uploads and uploads[0]["with"]["path"] == "runs/book"


def test_the_readme_is_a_front_page_and_every_page_is_in_the_book():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    index = (REPO / "docs" / "index.md").read_text()
    for page in PAGES:
        if page.stem != "index":
            assert re.search(rf"(?m)^{re.escape(page.stem)}$", index), f"{page.name} is not in the book's toctree"
    for lesson in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"../notebooks/{lesson.stem}" in index


def test_the_pages_links_resolve():
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(((?!https?://|#)[^)#\s]+)", text):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
