"""Shared fixtures.

``real_root`` is the folder of real Kvasir-SEG / CVC-ClinicDB frames in the PraNet layout:
``$KDAS_DATA_ROOT`` if set, else ``../shared/data/polyp256`` beside the checkout. When it is
missing, the tests that need it are skipped with the reason printed, except under CI
(``CI=true``), where they fail: CI must never pass by silently skipping the real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_ROOT = REPO.parent / "shared" / "data" / "polyp256"


@pytest.fixture(autouse=True)
def _settings_left_as_found(request):
    """Every test leaves the ``KDAS_*`` variables as it found them. One that did not (a
    ``KDAS_RUNS_DIR`` into a test's temporary Drive folder) made the notebooks tested after it train
    their teacher and students again, in that folder: more than a minute of ``make test``."""
    before = {k: v for k, v in os.environ.items() if k.startswith("KDAS_")}
    yield
    after = {k: v for k, v in os.environ.items() if k.startswith("KDAS_")}
    if after != before:
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        os.environ.update(before)
        for k in after.keys() - before.keys():
            del os.environ[k]
        pytest.fail(f"{request.node.nodeid} left {', '.join(changed)} changed (put back now)", pytrace=False)


def _real_root() -> Path:
    return Path(os.environ.get("KDAS_DATA_ROOT", DEFAULT_REAL_ROOT)).expanduser()


@pytest.fixture(scope="session")
def real_root() -> Path:
    root = _real_root()
    if not (root / "TrainDataset").is_dir():
        message = (
            f"real polyp data not found at {root}: set KDAS_DATA_ROOT to a PraNet-layout folder "
            f"(TrainDataset/, TestDataset/)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " -- CI must run the real-data tests", pytrace=False)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def real_pair(real_root):
    """One real Kvasir-SEG training pair with a medium-sized polyp."""
    images = real_root / "TrainDataset" / "images"
    name = "cju0qkwl35piu0993l0dewei2"
    return images / f"{name}.jpg", real_root / "TrainDataset" / "masks" / f"{name}.png"


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A small synthetic dataset (24 train, 6 per test set), made once per session."""
    from kdas_utils.data import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic") / "data", seed=0, n_train=24, n_test=6)


def write_pair(split: Path, stem: str, size=(32, 24), image_suffix=".jpg", mask_suffix=".png"):
    """Write a small valid image/mask pair into ``split/{images,masks}`` and return the paths."""
    (split / "images").mkdir(parents=True, exist_ok=True)
    (split / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(stem)) % 2**32)
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[size[1] // 4 : size[1] // 2, size[0] // 4 : size[0] // 2] = 255
    image_path = split / "images" / f"{stem}{image_suffix}"
    mask_path = split / "masks" / f"{stem}{mask_suffix}"
    Image.fromarray(image).save(image_path)
    Image.fromarray(mask).save(mask_path)
    return image_path, mask_path


@pytest.fixture(scope="session")
def unseen_root(real_root) -> Path:
    """The real frames of two unseen sets (CVC-ColonDB, ETIS-LaribPolypDB) beside the training data:
    ``$KDAS_TEST_ROOTS``' first folder if set, else ``../shared/data/unseen256``; like ``real_root``,
    missing fails under CI and skips elsewhere."""
    from kdas_utils.config import test_roots

    root = (test_roots() or [REPO.parent / "shared" / "data" / "unseen256"])[0]
    if not (root / "TestDataset").is_dir():
        message = f"unseen test frames not found at {root}: set KDAS_TEST_ROOTS to a folder holding TestDataset/"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " -- CI must run the real-data tests", pytrace=False)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def tutorial_01(tmp_path_factory):
    """``(out, times, notebook)``: notebook 01 executed by :func:`kdas_utils.tutorial.run_notebooks`
    (what ``make tutorial`` calls) into a temporary folder, with ``MPLBACKEND=agg`` as ``make test``
    sets it; shared by the executor's tests and the book's, so it runs once."""
    import nbformat

    from kdas_utils.tutorial import run_notebooks

    notebook = REPO / "notebooks" / "01_data_preparation.ipynb"
    out = tmp_path_factory.mktemp("tutorial")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("KDAS_RUNS_DIR", raising=False)  # figures go under out/, not runs/
        patch.setenv("MPLBACKEND", "agg")
        times = run_notebooks([notebook], out)
    return out, times, nbformat.read(out / "notebooks" / notebook.name, as_version=4)
