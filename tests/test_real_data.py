"""Both loaders on the real Kvasir-SEG / CVC-ClinicDB frames (``real_root`` fixture)."""

import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from kdas_utils.data import (
    DatasetError,
    NonBinaryMaskWarning,
    PolypDataset,
    eval_transforms,
    find_dataset,
    find_kvasir_seg_pairs,
    find_pairs,
    read_mask,
    train_transforms,
)

pytestmark = pytest.mark.realdata


def test_pranet_layout_counts(real_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonBinaryMaskWarning)  # these masks are exactly binary
        dataset = find_dataset(real_root)
    assert len(dataset["train"]) == 1446
    assert {name: len(pairs) for name, pairs in dataset["test"].items()} == {"CVC-ClinicDB": 62, "Kvasir": 99}
    kvasir = [p for p in dataset["train"] if not p[0].stem.startswith("clinicdb_")]
    clinic = [p for p in dataset["train"] if p[0].stem.startswith("clinicdb_")]
    assert (len(kvasir), len(clinic)) == (899, 547)
    assert all(i.stem == m.stem for i, m in dataset["train"])


def _kvasir_release(real_root, folder, n=12):
    """A Kvasir-SEG release folder (``Kvasir-SEG/{images,masks}/*.jpg`` plus the bbox json)
    made from real frames, with masks saved as JPEG as Simula ships them."""
    release = folder / "kvasir-seg" / "Kvasir-SEG"
    (release / "images").mkdir(parents=True)
    (release / "masks").mkdir()
    (release / "kavsir_bboxes.json").write_text("{}")
    pairs = [p for p in find_pairs(real_root / "TrainDataset", verify=False) if p[0].stem.startswith("cju")][:n]
    for image_path, mask_path in pairs:
        shutil.copy(image_path, release / "images" / image_path.name)
        with Image.open(mask_path) as mask:
            mask.convert("RGB").save(release / "masks" / f"{mask_path.stem}.jpg", quality=75)
    return pairs


def test_kvasir_release_layout(real_root, tmp_path):
    originals = _kvasir_release(real_root, tmp_path)
    with pytest.warns(NonBinaryMaskWarning, match=r"of 12 masks .* not binary"):
        pairs = find_kvasir_seg_pairs(tmp_path)  # two levels above Kvasir-SEG/
    assert [p[0].name for p in pairs] == [p[0].name for p in originals]
    for (_, jpeg_mask), (_, png_mask) in zip(pairs, originals):
        a, b = read_mask(jpeg_mask).astype(bool), read_mask(png_mask).astype(bool)
        assert (a & b).sum() / (a | b).sum() > 0.98  # JPEG artefacts binarised away


def test_kvasir_release_missing(tmp_path):
    with pytest.raises(DatasetError, match="no Kvasir-SEG release found"):
        find_kvasir_seg_pairs(tmp_path)


def test_dataset_items_on_real_frames(real_root):
    pairs = find_pairs(real_root / "TestDataset" / "CVC-ClinicDB", verify=False)[:4]
    for transform in (eval_transforms(96), train_transforms(96)):
        item = PolypDataset(pairs, transform)[1]
        assert item["image"].shape == (3, 96, 96) and item["mask"].shape == (1, 96, 96)
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0} and item["mask"].sum() > 0
        assert item["name"] == pairs[1][0].stem


def test_real_masks_match_stats(real_root):
    mask = read_mask(real_root / "TestDataset" / "Kvasir" / "masks" / "cju0u82z3cuma0835wlxrnrjv.png")
    assert mask.shape == (256, 256) and 0 < mask.mean() < 1 and np.isin(mask, (0, 1)).all()
