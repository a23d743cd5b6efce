import filecmp
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from kdas_utils.data import DatasetError, find_pairs, make_synthetic, synthetic


def test_layout_and_counts(small_synthetic):
    assert len(find_pairs(small_synthetic / "TrainDataset")) == 24
    for name in ("Synthetic", "Synthetic-Shift"):
        assert len(find_pairs(small_synthetic / "TestDataset" / name)) == 6
    manifest = json.loads((small_synthetic / "synthetic.json").read_text())
    assert manifest["seed"] == 0 and manifest["n_train"] == 24


def test_files_are_rgb_jpeg_and_binary_png(small_synthetic):
    for image_path, mask_path in find_pairs(small_synthetic / "TrainDataset"):
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (256, 256))
            assert (mask.format, mask.mode) == ("PNG", "L")
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_same_seed_byte_identical(tmp_path, small_synthetic):
    again = make_synthetic(tmp_path / "again", seed=0, n_train=24, n_test=6)
    files = sorted(p.relative_to(small_synthetic) for p in small_synthetic.rglob("*") if p.is_file())
    assert len(files) == 2 * (24 + 6 + 6) + 1
    match, mismatch, errors = filecmp.cmpfiles(small_synthetic, again, [str(f) for f in files], shallow=False)
    assert mismatch == [] and errors == []


def test_other_seed_differs(tmp_path):
    a = synthetic.render_frame(synthetic.frame_rng(0, 0, 3))[0]
    b = synthetic.render_frame(synthetic.frame_rng(1, 0, 3))[0]
    assert np.abs(a.astype(int) - b).mean() > 10


def test_polyp_counts_vary_from_zero_to_three():
    counts = []
    for index in range(60):
        _, mask = synthetic.render_frame(synthetic.frame_rng(0, 0, index), size=128)
        counts.append(cv2.connectedComponents(mask)[0] - 1)
    assert min(counts) == 0 and max(counts) >= 2
    assert 0.6 <= np.mean([c >= 1 for c in counts]) <= 0.98


@pytest.mark.parametrize("index", range(8))
def test_mask_marks_where_the_polyp_was_painted(index):
    """Painting the polyps changes the visible image inside the mask and only near it
    (the soft edge and the contact shadow reach a few pixels out)."""
    image, mask, layers = synthetic.render_frame(synthetic.frame_rng(5, 0, index), return_layers=True)
    change = np.abs(layers["polyps"].astype(int) - layers["lumen and folds"]).max(axis=2) > 2
    visible = image.max(axis=2) > 0
    painted = cv2.dilate(mask, np.ones((31, 31), np.uint8)).astype(bool)
    assert not change[visible & ~painted].any(), "the image changed far from every mask polyp"
    if mask.any():
        inner = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
        assert change[inner].mean() > 0.9, "mask pixels where no polyp was painted"


def test_mask_empty_outside_the_field_of_view():
    for index in range(30):
        image, mask = synthetic.render_frame(synthetic.frame_rng(0, 0, index), size=128)
        black = image.max(axis=2) == 0
        assert not (mask.astype(bool) & black).any()


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not a synthetic dataset"):
        make_synthetic(tmp_path, n_train=2, n_test=1)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = synthetic.render_frame
    monkeypatch.setattr(synthetic, "render_frame", failing)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic(tmp_path / "data", n_train=10, n_test=2)
    assert list(tmp_path.iterdir()) == []


def test_changed_arguments_regenerate(tmp_path):
    root = make_synthetic(tmp_path / "d", seed=0, n_train=3, n_test=1)
    make_synthetic(root, seed=0, n_train=5, n_test=1)
    assert len(find_pairs(root / "TrainDataset")) == 5
