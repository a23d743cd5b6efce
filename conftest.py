"""What every pytest run of the project shares: the notebooks as nbval executed them, and the
fixtures for the Python blocks of README.md, which ``make test`` runs as written with
pytest-markdown-docs (``pytest --markdown-docs README.md``).

**The notebooks as tested.** ``make test`` runs every lesson under nbval; the hooks below keep what
each cell printed and drew and write the executed lesson to ``runs/notebooks-tested/`` once all its
cells have passed (emptied when a run starts, so it holds this run's lessons only). The book's test
(marked ``after_notebooks``, so it runs last) builds the book from them: every lesson page with its
figures, without executing the series a second time.

Every block runs in a sandbox (:func:`_readme_sandbox`): what it writes with ``tempfile`` lands
in pytest's temporary folder (removed by pytest after a few runs), and the environment variables
it sets are put back afterwards. A block names any other fixture it needs in its info string,
e.g. ```` ```python fixture:kvasir_mirror ````; GitHub shows such a block as plain Python.
The unit tests' fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import shutil
import tempfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


# --------------------------------------------------------------------------- the notebooks as tested
def tested_notebooks() -> Path:
    """``runs/notebooks-tested/``: the lessons as this pytest run executed them under nbval."""
    from kdas_utils.config import runs_dir

    return runs_dir() / "notebooks-tested"


_OUTPUTS: dict[str, dict[int, list]] = {}  # notebook node id -> {code cell number: outputs}
_FAILED: set[str] = set()  # notebooks with a cell that failed: not written


def pytest_sessionstart(session):
    shutil.rmtree(tested_notebooks(), ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``after_notebooks`` run after every other item (the notebooks' cells among them)."""
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)


INLINE = "module://matplotlib_inline.backend_inline"  # what make tutorial's kernels draw with


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """An nbval kernel starts (at its notebook's first cell) with matplotlib's inline backend, as
    ``make tutorial``'s do, so that its figures are outputs; the pytest process keeps its own backend."""
    if hasattr(item, "test_outputs") and item.parent.kernel is None:
        os.environ["MPLBACKEND"] = INLINE
    elif not hasattr(item, "test_outputs") and os.environ.get("MPLBACKEND") == INLINE:
        os.environ["MPLBACKEND"] = "agg"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if not hasattr(item, "test_outputs") or report.when != "call":
        return  # not an nbval cell, or not its run
    if report.failed:
        _FAILED.add(item.parent.nodeid)
    elif item.test_outputs is not None:
        _OUTPUTS.setdefault(item.parent.nodeid, {})[item.cell_num] = item.test_outputs


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell: write it with the outputs of this run (cells that did not run,
    e.g. skipped, keep their committed outputs)."""
    if not hasattr(item, "test_outputs") or (nextitem is not None and nextitem.parent is item.parent):
        return
    import copy

    import nbformat

    notebook, outputs = item.parent, _OUTPUTS.pop(item.parent.nodeid, {})
    if notebook.nodeid in _FAILED or not outputs:
        return
    executed = copy.deepcopy(notebook.nb)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    for number, cell_outputs in outputs.items():
        code[number].outputs = cell_outputs
    tested_notebooks().mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, tested_notebooks() / Path(str(notebook.path)).name)


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def fabricated_kvasir_seg(n: int = 110, seed: int = 0) -> bytes:
    """A zip shaped like Simula's ``kvasir-seg.zip`` (``Kvasir-SEG/{images,masks}/*.jpg``, masks
    as JPEG), with ``n`` small random frames: more than the 100 test frames of the split."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            mask = np.zeros((32, 40), np.uint8)
            mask[8:24, 8 : 16 + i % 20] = 255
            archive.writestr(f"Kvasir-SEG/images/f{i:03d}.jpg", _jpeg(rng.integers(0, 256, (32, 40, 3), np.uint8)))
            archive.writestr(f"Kvasir-SEG/masks/f{i:03d}.jpg", _jpeg(mask))
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _readme_sandbox(request):
    """For README blocks only (pytest-markdown-docs marks them ``markdown-docs``; other tests are
    left alone): ``tempfile`` writes under ``tmp_path``, and ``os.environ`` is restored after the block."""
    if request.node.get_closest_marker("markdown-docs") is None:
        yield
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def kvasir_mirror(tmp_path, monkeypatch):
    """README's download block, offline: it runs in an empty working folder, and the address of
    ``SOURCES["kvasir-seg"]`` points at a server on 127.0.0.1 that serves :func:`fabricated_kvasir_seg`
    (the tests never reach the internet)."""
    from kdas_utils.data import SOURCES

    served = tmp_path / "mirror"
    served.mkdir()
    (served / "kvasir-seg.zip").write_bytes(fabricated_kvasir_seg())
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = SOURCES["kvasir-seg"]
    local = f"http://127.0.0.1:{server.server_address[1]}/kvasir-seg.zip"
    monkeypatch.setitem(SOURCES, "kvasir-seg", dataclasses.replace(source, url=local))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work
    server.shutdown()
    server.server_close()
