"""Augmentation keeps image and mask aligned; evaluation resizes and normalises."""

import numpy as np
import torch

from kdas_utils.data import eval_transforms, read_image, read_mask, train_transforms
from kdas_utils.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize


def test_train_pipeline_keeps_mask_on_the_image(real_pair):
    """The real mask is burnt into a copy of the real frame that travels as a second image
    target: whatever the pipeline does to images (flip, rotate, scale, shift, colour, blur),
    it does to that copy too. After every draw, the copy's bright region must sit where the
    transformed mask is."""
    image, mask = read_image(real_pair[0]), read_mask(real_pair[1])
    assert 0.05 < mask.mean() < 0.5
    marked = image.copy()
    marked[mask.astype(bool)] = 255
    marked[~mask.astype(bool)] //= 4  # background darker than 64
    pipeline = train_transforms(128, additional_targets={"marked": "image"}, seed=7)
    moved = 0
    for _ in range(20):
        out = pipeline(image=image, mask=mask, marked=marked)
        assert out["image"].shape == (3, 128, 128) and out["mask"].shape == (128, 128)
        assert set(np.unique(np.asarray(out["mask"]))) <= {0, 1}  # nearest-neighbour masks
        found = denormalize(out["marked"]).mean(axis=2) > 128
        truth = np.asarray(out["mask"]).astype(bool)
        iou = (found & truth).sum() / max((found | truth).sum(), 1)
        assert iou > 0.9, iou
        resized = read_mask(real_pair[1])[::2, ::2].astype(bool)
        moved += (truth != resized).mean() > 0.05
    assert moved >= 10  # the pipeline really moved things in most draws


def test_train_pipeline_without_augmentation_is_eval_like(real_pair):
    image, mask = read_image(real_pair[0]), read_mask(real_pair[1])
    a = train_transforms(64, augment=False)(image=image, mask=mask)
    b = eval_transforms(64)(image=image, mask=mask)
    assert torch.equal(a["image"], b["image"]) and np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))


def test_eval_pipeline_normalises_with_imagenet_statistics():
    image = np.full((50, 70, 3), 128, np.uint8)
    out = eval_transforms(32)(image=image, mask=np.zeros((50, 70), np.uint8))
    assert out["image"].shape == (3, 32, 32) and out["image"].dtype == torch.float32
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(out["image"].mean(dim=(1, 2)).numpy(), expected, atol=1e-4)
    assert np.abs(denormalize(out["image"]).astype(int) - 128).max() <= 1


def test_seeded_pipeline_repeats():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    a = train_transforms(32, seed=3)(image=image, mask=mask)["image"]
    b = train_transforms(32, seed=3)(image=image, mask=mask)["image"]
    assert torch.equal(a, b)
