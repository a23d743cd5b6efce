"""The torch dataset over image/mask pairs, and the train/validation split."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .pairs import DatasetError, Pair, read_image, read_mask


class PolypDataset(Dataset):
    """Image/mask pairs as tensors.

    Each item is a dict: ``image`` ``(3, H, W) float32`` (normalised by the transform),
    ``mask`` ``(1, H, W) float32`` in {0, 1}, and ``name`` (the file stem).

    Args:
        pairs: ``(image_path, mask_path)`` pairs, e.g. from :func:`find_pairs`.
        transform: an albumentations pipeline from :mod:`kdas_utils.data.transforms`.
        cache_size: decode each pair once, resize it to ``cache_size`` (bilinear for the image,
            nearest for the mask, exactly as the pipelines' first ``Resize`` does) and keep it in
            memory; later epochs skip decoding. Each data-loader worker keeps its own cache
            (about ``3 cache_size^2`` bytes per frame). ``None``: read the files every time.
    """

    def __init__(self, pairs: list[Pair], transform, cache_size: int | None = None):
        if not pairs:
            raise DatasetError("PolypDataset got no pairs; check the folder passed to find_pairs().")
        self.pairs = [(Path(i), Path(m)) for i, m in pairs]
        self.transform = transform
        self.cache_size = cache_size
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self._cache:
            return self._cache[index]
        image_path, mask_path = self.pairs[index]
        image, mask = read_image(image_path), read_mask(mask_path)
        if image.shape[:2] != mask.shape:
            raise DatasetError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}; re-export the mask at the image's size."
            )
        if self.cache_size is not None:
            size = (self.cache_size, self.cache_size)
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            self._cache[index] = (image, mask)
        return image, mask

    def __getitem__(self, index: int) -> dict:
        image, mask = self._read(index)
        out = self.transform(image=image, mask=mask)
        return {
            "image": out["image"].float(),
            "mask": torch.as_tensor(out["mask"]).float().unsqueeze(0),
            "name": self.pairs[index][0].stem,
        }


def train_val_split(pairs: list[Pair], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Carve a validation split out of the training pairs (model selection happens there,
    never on the test sets). Deterministic for a seed; both parts keep the input order.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction}: must lie strictly between 0 and 1, e.g. 0.1")
    n_val = max(1, round(len(pairs) * val_fraction))
    if n_val >= len(pairs):
        raise DatasetError(f"{len(pairs)} pairs are too few to carve a validation split of {val_fraction:.0%}")
    chosen = set(np.random.default_rng(seed).choice(len(pairs), n_val, replace=False).tolist())
    train = [p for i, p in enumerate(pairs) if i not in chosen]
    val = [p for i, p in enumerate(pairs) if i in chosen]
    return train, val
