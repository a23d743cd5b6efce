"""Execute every notebook of ``notebooks/`` in order, headless: what ``make tutorial`` runs.

Executed copies go to ``<out>/notebooks/``, figures (saved by the notebooks through
:func:`kdas_utils.notebook.save_figure`) to ``<out>/figures/``, and the wall time of each
notebook to ``<out>/tutorial_times.json``.

    python -m kdas_utils.tutorial --out runs [--only 01]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .config import project_root


def run_notebooks(notebooks: list[Path], out: Path, timeout: int = 1200) -> dict[str, float]:
    """Execute ``notebooks`` in order; return ``{name: seconds}``. Stops at the first failure."""
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KDAS_RUNS_DIR", str(out.resolve()))
    os.environ.setdefault("MPLBACKEND", "agg")
    times = {}
    for path in notebooks:
        print(f"running {path.name} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        start = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError:
            nbformat.write(notebook, out / "notebooks" / path.name)
            print(f"FAILED: {path.name}; the partly executed copy is {out / 'notebooks' / path.name}", file=sys.stderr)
            raise
        times[path.name] = round(time.perf_counter() - start, 1)
        nbformat.write(notebook, out / "notebooks" / path.name)
        print(f"  done in {times[path.name]:.1f} s -> {out / 'notebooks' / path.name}", flush=True)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the KDAS notebooks in order, headless.")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="output folder (default: runs)")
    parser.add_argument("--only", default="", help="run only notebooks whose name starts with this, e.g. 01")
    args = parser.parse_args(argv)
    notebooks = sorted((project_root() / "notebooks").glob(f"{args.only}*.ipynb"))
    if not notebooks:
        parser.error(f"no notebook matches {args.only!r} in {project_root() / 'notebooks'}")
    try:
        times = run_notebooks(notebooks, args.out)
    except CellExecutionError:
        return 1
    times["total"] = round(sum(times.values()), 1)
    (args.out / "tutorial_times.json").write_text(json.dumps(times, indent=2) + "\n")
    print(f"all {len(notebooks)} notebooks ran in {times['total']:.1f} s; outputs in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
