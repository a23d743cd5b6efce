"""Fixtures for the Python blocks of README.md, which ``make test`` runs as written with
pytest-markdown-docs (``pytest --markdown-docs README.md``).

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
import tempfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image


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
