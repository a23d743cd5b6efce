"""Partial labels: a training set whose masks are kept for a fraction of the frames only.

This is the setting where a teacher is known to pay: it has seen every mask, the student sees a
few, and the teacher's maps on the other frames are all the student learns from there. The
masks of the frames left unlabelled are replaced by NaN, the marker that
:func:`kdas_utils.kdas.losses.deep_supervision_loss` reads to leave a frame out of ``L_seg``; the
distillation terms still see every frame. Which frames keep their mask is drawn from the run's
seed, so the student alone and the distilled student of one seed see the same masks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from ..kdas.losses import is_labelled

__all__ = ["PartialLabels", "is_labelled", "labelled_indices"]


def labelled_indices(n: int, fraction: float, seed: int) -> list[int]:
    """The sorted indices of ``ceil(fraction n)`` frames out of ``n`` that keep their mask,
    drawn without replacement from ``seed`` (at least one frame)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction}: must lie in (0, 1], e.g. 0.25 for a quarter of the masks")
    if n < 1:
        raise ValueError("no frames to label: the training set is empty")
    count = max(1, math.ceil(fraction * n))
    return sorted(np.random.default_rng(seed).choice(n, count, replace=False).tolist())


class PartialLabels(Dataset):
    """A view of a :class:`~kdas_utils.data.PolypDataset` in which only a ``fraction`` of the
    frames keep their mask; the others carry a ``(1, H, W)`` mask of NaN.

    Args:
        dataset: the training set (items with ``image``, ``mask`` and ``name``).
        fraction: the share of frames that keep their mask, in ``(0, 1]``.
        seed: draws which frames (:func:`labelled_indices`).

    Attributes:
        labelled: the indices of the frames that keep their mask.
        names: their names (the file stems), e.g. to record them with the run.
    """

    def __init__(self, dataset, fraction: float, seed: int = 0):
        self.dataset, self.fraction, self.seed = dataset, fraction, seed
        self.labelled = labelled_indices(len(dataset), fraction, seed)
        self._keep = set(self.labelled)

    @property
    def transform(self):
        """The wrapped dataset's transform (the engine re-seeds it per sample)."""
        return self.dataset.transform

    @property
    def names(self) -> list[str]:
        return [self.dataset.pairs[i][0].stem for i in self.labelled]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        if index not in self._keep:
            item = {**item, "mask": torch.full_like(item["mask"], float("nan"))}
        return item
