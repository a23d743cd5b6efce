"""Bad input: one test per case. Each error names the offending file and what to do."""

import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import write_pair
from kdas_utils.data import (
    DatasetError,
    NonBinaryMaskWarning,
    PolypDataset,
    eval_transforms,
    find_pairs,
    read_image,
    read_mask,
)


@pytest.fixture
def split(tmp_path):
    split = tmp_path / "TrainDataset"
    for stem in ("a", "b", "c"):
        write_pair(split, stem)
    return split


def test_valid_split_sorted_pairs(split):
    pairs = find_pairs(split)
    assert [(i.name, m.name) for i, m in pairs] == [("a.jpg", "a.png"), ("b.jpg", "b.png"), ("c.jpg", "c.png")]


def test_singular_folder_names_and_tif(tmp_path):
    split = tmp_path / "s"
    write_pair(split, "x", image_suffix=".tif")
    (split / "images").rename(split / "image")
    (split / "masks").rename(split / "mask")
    assert [p[0].name for p in find_pairs(split)] == ["x.tif"]


def test_image_without_mask(split):
    (split / "masks" / "b.png").unlink()
    with pytest.raises(
        DatasetError, match=r"1 image has no mask of the same stem in .*masks: .*images/b\.jpg\. Add the missing masks"
    ):
        find_pairs(split)


def test_mask_without_image(split):
    (split / "images" / "c.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 mask has no image of the same stem.*masks/c\.png"):
        find_pairs(split)


def test_size_mismatch(split):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(split / "masks" / "a.png")
    with pytest.raises(DatasetError, match=r"masks/a\.png: mask is 10x10 but its image a\.jpg is 32x24"):
        find_pairs(split)


def test_truncated_image(split):
    path = split / "images" / "b.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"images/b\.jpg: cannot be decoded.*truncated or corrupt"):
        find_pairs(split)


def test_truncated_mask(split):
    path = split / "masks" / "c.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    with pytest.raises(DatasetError, match=r"masks/c\.png: cannot be decoded"):
        find_pairs(split)


def test_corrupt_file(split):
    (split / "images" / "a.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    with pytest.raises(DatasetError, match=r"images/a\.jpg: cannot be decoded"):
        find_pairs(split)


def test_truncation_found_at_load_time_without_verify(split):
    path = split / "images" / "a.jpg"
    path.write_bytes(path.read_bytes()[:200])
    pairs = find_pairs(split, verify=False)
    with pytest.raises(DatasetError, match=r"images/a\.jpg"):
        PolypDataset(pairs, eval_transforms(32))[0]


def test_empty_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="are empty"):
        find_pairs(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: folder not found.*KDAS_DATA_ROOT"):
        find_pairs(tmp_path / "nowhere")


def test_wrong_layout(tmp_path):
    (tmp_path / "frames").mkdir()
    with pytest.raises(DatasetError, match=r"wrong layout.*found \['frames'\]"):
        find_pairs(tmp_path)


def test_wrong_layout_dataset_root_hint(tmp_path):
    write_pair(tmp_path / "TrainDataset", "a")
    with pytest.raises(DatasetError, match=r"dataset root: pass .*TrainDataset instead"):
        find_pairs(tmp_path)


def test_non_image_file(split):
    (split / "images" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"notes\.txt: not an image file"):
        find_pairs(split)


def test_duplicate_stem(split):
    with Image.open(split / "images" / "a.jpg") as image:
        image.save(split / "images" / "a.png")
    with pytest.raises(DatasetError, match="share the stem 'a'"):
        find_pairs(split)


def test_hidden_and_system_files_are_not_samples(split):
    (split / "images" / ".DS_Store").write_bytes(b"\0")
    (split / "masks" / "Thumbs.db").write_bytes(b"\0")
    assert len(find_pairs(split)) == 3


def test_non_binary_masks_warn_with_count_and_binarise_at_128(split):
    mask = np.zeros((24, 32), np.uint8)
    mask[:, :4] = [0, 127, 128, 255]
    for stem in ("a", "c"):
        Image.fromarray(mask).save(split / "masks" / f"{stem}.png")
    with pytest.warns(NonBinaryMaskWarning, match=r"2 of 3 masks .* not binary \(first: a\.png\).*binarised at 128"):
        pairs = find_pairs(split)
    assert len(pairs) == 3  # nothing dropped
    assert read_mask(split / "masks" / "a.png")[0, :4].tolist() == [0, 0, 1, 1]


def test_binary_masks_do_not_warn(split):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_pairs(split)


def test_16_bit_mask_converted(split):
    mask = np.zeros((24, 32), np.uint16)
    mask[5:10, 5:10] = 65535
    Image.fromarray(mask).save(split / "masks" / "b.png")
    with Image.open(split / "masks" / "b.png") as stored:
        assert stored.mode.startswith("I")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_pairs(split)
    loaded = read_mask(split / "masks" / "b.png")
    assert loaded.dtype == np.uint8 and loaded.sum() == 25 and loaded[5:10, 5:10].all()


def test_label_mask_zero_one(split):
    mask = np.zeros((24, 32), np.uint8)
    mask[:3, :3] = 1
    Image.fromarray(mask).save(split / "masks" / "a.png")
    assert read_mask(split / "masks" / "a.png").sum() == 9


def test_coloured_mask(split):
    mask = np.zeros((24, 32, 3), np.uint8)
    mask[:4, :4, 0] = 255  # red polyp on black: grayscale conversion would lose it
    Image.fromarray(mask).save(split / "masks" / "a.png")
    assert read_mask(split / "masks" / "a.png").sum() == 16


def test_rgba_image_converted(split):
    rgba = np.random.default_rng(0).integers(0, 256, (24, 32, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(split / "images" / "a.png")
    (split / "images" / "a.jpg").unlink()
    find_pairs(split)
    image = read_image(split / "images" / "a.png")
    assert image.shape == (24, 32, 3) and np.array_equal(image, rgba[..., :3])


def test_grayscale_image_converted(split):
    gray = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32).astype(np.uint8)
    Image.fromarray(gray).save(split / "images" / "b.png")
    (split / "images" / "b.jpg").unlink()
    image = read_image(find_pairs(split)[1][0])
    assert image.shape == (24, 32, 3) and all(np.array_equal(image[..., c], gray) for c in range(3))


def test_many_unmatched_images_are_counted(split):
    for stem in "defghij":
        write_pair(split, stem)
        (split / "masks" / f"{stem}.png").unlink()
    with pytest.raises(DatasetError, match=r"7 images have no mask .*images/d\.jpg.* and 2 more"):
        find_pairs(split)
