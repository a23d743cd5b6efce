"""Execute every notebook of ``notebooks/`` in order, headless: what ``make tutorial`` runs.

Executed copies go to ``<out>/notebooks/`` with their figures inline (the kernel draws with
matplotlib's inline backend), the figures' PNGs (saved by the notebooks through
:func:`kdas_utils.notebook.save_figure`) to ``<out>/figures/``, and the wall time of each
notebook to ``<out>/tutorial_times.json``. Progress bars are off in the kernel
(:data:`KERNEL_ENV`): a saved bar is only its first frame.

    python -m kdas_utils.tutorial --out runs [--only 01]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .config import data_root, project_root, runs_dir, synthetic_root

# What the kernel that executes the notebooks gets on top of this process's environment.
KERNEL_ENV = {
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures saved in the outputs, as in Jupyter
    "KDAS_PROGRESS": "0",  # no tqdm bars from kdas_utils (kdas_utils.notebook.progress_bars) ...
    "TQDM_DISABLE": "1",  # ... nor from any other tqdm bar that does not choose for itself
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # the debugger's note on frozen modules, at kernel start
}


def kernel_env(out: Path) -> dict[str, str]:
    """The environment of the executing kernel: this process's, ``KDAS_RUNS_DIR`` defaulting to
    ``out`` (so figures and checkpoints land beside the executed notebooks), and :data:`KERNEL_ENV`."""
    env = dict(os.environ)
    env.setdefault("KDAS_RUNS_DIR", str(out.resolve()))
    return env | KERNEL_ENV


PROGRESS_FRAME = re.compile(r"\d+%\|")  # tqdm's "  0%|          | 0/8 [00:00<?, ?it/s]"


def _output_text(output) -> str:
    """What an output shows as text: stream text, ``text/*`` data, an error's traceback."""
    parts = [output.get("text", ""), *output.get("traceback", [])]
    parts += [value for key, value in output.get("data", {}).items() if key.startswith("text/")]
    return "\n".join(part if isinstance(part, str) else "".join(part) for part in parts)


def machine_folders() -> list[Path]:
    """Folders whose absolute paths must not appear in executed outputs: the folder holding the
    project (so the project and its siblings, such as ``../shared``), the home folder, the
    temporary folder and the folders of :mod:`kdas_utils.config`."""
    folders = {
        project_root().parent,
        Path.home(),
        Path(tempfile.gettempdir()),
        data_root(),
        synthetic_root(),
        runs_dir(),
    }
    return sorted(folder for folder in folders if len(folder.parts) > 1)  # never "/" alone


def residue(notebook, folders: list[Path] | None = None) -> list[str]:
    """What the outputs of an executed ``notebook`` should not hold, one line each: text on stderr
    (warnings), progress-bar frames, and absolute paths of :func:`machine_folders` (print them with
    :func:`kdas_utils.plots.shown_path`). Empty for a clean notebook."""
    folders = machine_folders() if folders is None else folders
    found = []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code, 1):
        where = f"code cell {number} (execution {cell.get('execution_count')})"
        for output in cell.get("outputs", []):
            text = _output_text(output)
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                found.append(f"{where}: stderr: {text.strip()[:200]}")
            if PROGRESS_FRAME.search(text):
                found.append(f"{where}: a progress bar: {PROGRESS_FRAME.search(text).group()}")
            paths = [str(folder) for folder in folders if re.search(rf"{re.escape(str(folder))}(\W|$)", text)]
            if paths:
                found.append(f"{where}: absolute paths under {', '.join(paths)}")
    return found


class LocalKernelManager(AsyncKernelManager):
    """A kernel manager that talks to its kernel over local sockets (ZeroMQ's IPC transport, files
    in a temporary folder of its own) instead of TCP ports on localhost: nothing to collide with
    another kernel's ports, nothing reachable from the network, and so no "Kernel is running over
    TCP without encryption" warning in the log of every notebook (ipykernel gives it for TCP only)."""

    def __init__(self, **kwargs):
        self.sockets = tempfile.mkdtemp(prefix="kdas-kernel-")
        super().__init__(transport="ipc", ip=str(Path(self.sockets) / "kernel"), **kwargs)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self.sockets, ignore_errors=True)


def run_notebooks(notebooks: list[Path], out: Path, timeout: int = 1200) -> dict[str, float]:
    """Execute ``notebooks`` in order into ``out/notebooks/``; return ``{name: seconds}``.
    Stops at the first failure (its partly executed copy is written)."""
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    env = kernel_env(out)
    folders = [*machine_folders(), Path(env["KDAS_RUNS_DIR"]).resolve()]
    times = {}
    for path in notebooks:
        print(f"running {path.name} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            kernel_manager_class=LocalKernelManager,
            timeout=timeout,
            resources={"metadata": {"path": str(path.parent)}},
        )
        start = time.perf_counter()
        try:
            client.execute(env=env)
        except CellExecutionError:
            nbformat.write(notebook, out / "notebooks" / path.name)
            print(f"FAILED: {path.name}; the partly executed copy is {out / 'notebooks' / path.name}", file=sys.stderr)
            raise
        times[path.name] = round(time.perf_counter() - start, 1)
        nbformat.write(notebook, out / "notebooks" / path.name)
        print(f"  done in {times[path.name]:.1f} s -> {out / 'notebooks' / path.name}", flush=True)
        for line in residue(notebook, folders):
            print(f"  not clean: {line}", flush=True)
    return times


# What a committed lesson keeps of an executed one: text, tables and printed lines; figures and widget views
# are left to make tutorial's copies (runs/notebooks/), so the repository stays light.
KEPT_OUTPUT = ("text/plain", "text/html", "text/markdown")


def committed_copy(executed) -> nbformat.NotebookNode:
    """An executed notebook as the repository keeps it: every text output (nbval compares the cells marked
    ``# NBVAL_CHECK_OUTPUT`` with them), no images, no widget views, no timing metadata."""
    notebook = nbformat.from_dict(executed)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type in ("display_data", "execute_result"):
                data = output.get("data", {})
                if any(key.startswith("image/") for key in data) or "data:video/" in "".join(data.get("text/html", "")):
                    continue  # a figure (its text/plain is only "<Figure size ...>") or an embedded video
                output.data = {k: v for k, v in output.data.items() if k in KEPT_OUTPUT}
                if not output.data:
                    continue
            kept.append(output)
        cell.outputs = kept
    return notebook


def commit_outputs(executed: Path, notebooks: Path) -> list[Path]:
    """Replace the outputs of each lesson in ``notebooks`` by the text outputs of its executed copy in
    ``executed`` (:func:`committed_copy`), for the lessons that have one; the sources must be the same.
    What a maintainer runs after ``make tutorial`` (``python -m kdas_utils.tutorial --commit-outputs``).

    Raises:
        ValueError: an executed copy's sources differ from the lesson's (it is not this lesson's run)."""
    written = []
    for lesson in sorted(notebooks.glob("*.ipynb")):
        run = executed / lesson.name
        if not run.exists():
            continue
        ours, theirs = nbformat.read(lesson, as_version=4), nbformat.read(run, as_version=4)
        if [c.source for c in ours.cells] != [c.source for c in theirs.cells]:
            raise ValueError(f"{run}: its cells are not those of {lesson}; run make tutorial again first")
        nbformat.write(committed_copy(theirs), lesson)
        written.append(lesson)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute the KDAS notebooks in order, headless.")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="output folder (default: runs)")
    parser.add_argument("--only", default="", help="run only notebooks whose name starts with this, e.g. 01")
    parser.add_argument(
        "--commit-outputs",
        action="store_true",
        help="run nothing: copy the text outputs of <out>/notebooks/ into notebooks/ (for maintainers, after a run)",
    )
    args = parser.parse_args(argv)
    if args.commit_outputs:
        for lesson in commit_outputs(args.out / "notebooks", project_root() / "notebooks"):
            print(f"outputs of {args.out / 'notebooks' / lesson.name} written into {lesson}")
        return 0
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
