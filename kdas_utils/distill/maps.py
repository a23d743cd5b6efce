"""Attention maps as pictures: what notebook 03 and the explorer show.

Two kinds of map, both returned as ``(B, H, W)`` float arrays at the input size:

* a backbone stage's activation energy ``Q = sum_c |F_c|^p`` (Zagoruyko and Komodakis) of the
  features *before* the stage's final LayerNorm (after it, ``Q`` is the same everywhere to about
  1e-6), divided by its mean over the frame so that 1 means "average" (the colour bar's scale).
  Larger ``p`` puts more weight on the strongest positions;
* a head's Attention-KD distribution, ``softmax`` over the pixels of ``A(P) = SDPA(P, P, P) / tau``,
  multiplied by the number of pixels so that 1 means "uniform". Lower ``tau`` sharpens it.
  This is the distribution that the paper's Attention-KD asks the student to match.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..kdas.attention import activation_energy, self_attention_map

LAYERS = ("stage1", "stage2", "stage3", "stage4", "P1", "P2")


def is_head(layer: str) -> bool:
    """Whether ``layer`` is a head's distribution (``P1``, ``P2``: 1 = uniform) rather than a stage's
    energy (1 = the frame's mean): the two quantities get a colour bar each."""
    return not layer.startswith("stage")


def nice_scale(largest: float) -> float:
    """The top of a colour bar that clips none of the maps shown: the smallest of 1, 2, 5, 10, 20, 50, ...
    at or above ``largest``. Every map is relative (1 = the frame's mean, or uniform), so the bar starts at 0."""
    if not largest > 1:  # NaN too
        return 1.0
    decade = 10.0 ** math.floor(math.log10(largest))
    return next(m * decade for m in (1, 2, 5, 10) if m * decade >= largest)


def _to_size(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def stage_attention(feature: torch.Tensor, size: tuple[int, int], p: float = 2.0) -> np.ndarray:
    """``(B, H, W)``: ``sum_c |F_c|^p`` of a ``(B, C, h, w)`` stage over its mean per image,
    upsampled to ``size`` (1 = the frame's average; no min-max stretch, so a flat map looks flat)."""
    q = _to_size(activation_energy(feature, p), size)
    return (q / q.flatten(1).mean(1).clamp(min=1e-12)[:, None, None]).cpu().numpy()


def head_attention(logits: torch.Tensor, tau: float = 2.0) -> np.ndarray:
    """``(B, H, W)``: the pixel distribution ``softmax(A(P))`` of ``(B, 1, H, W)`` logits, times ``H W``."""
    a = self_attention_map(logits, tau)
    b, _, h, w = a.shape
    return (torch.softmax(a.flatten(1), dim=1).view(b, h, w) * (h * w)).cpu().numpy()


def layer_map(out, layer: str, size: tuple[int, int], p: float = 2.0, tau: float = 2.0) -> np.ndarray:
    """The map of ``layer`` (one of :data:`LAYERS`) from a :class:`~kdas_utils.kdas.PolypOutput`."""
    if layer not in LAYERS:
        raise ValueError(f"layer={layer!r}: choose one of {LAYERS}")
    if layer.startswith("stage"):
        return stage_attention(out.prenorm[int(layer[-1]) - 1], size, p)
    return head_attention(out.feature(layer.lower()), tau)


def polyp_contrast(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``(B,)``: the mean of each ``(H, W)`` map on its polyp over its mean around it (1 = the map
    does not single out the polyp; ``NaN`` for a frame without polyp or without background).

    Args:
        maps: ``(B, H, W)`` attention maps (:func:`layer_map`).
        masks: ``(B, H, W)`` binary masks of the same frames.
    """
    masks = np.asarray(masks) > 0.5
    out = np.full(len(maps), np.nan)
    for i, (values, polyp) in enumerate(zip(maps, masks)):
        if polyp.any() and (~polyp).any():
            out[i] = values[polyp].mean() / max(values[~polyp].mean(), 1e-12)
    return out


def bar_share(maps: np.ndarray) -> np.ndarray:
    """``(B,)``: the share of each ``(H, W)`` map's variance that one profile repeated down its rows
    explains (its column means broadcast to every row): 1 for vertical bars, 0 when every row has
    the same mean. Head maps read the logit map's rows as tokens, and each row of ``A(P)`` is a
    weighted mean of the rows of ``P``: this measures how far that makes the rows alike."""
    maps = np.asarray(maps, dtype=np.float64)
    profile = np.broadcast_to(maps.mean(axis=1, keepdims=True), maps.shape)
    total = maps.var(axis=(1, 2))
    return np.where(total > 0, profile.var(axis=(1, 2)) / np.where(total > 0, total, 1), 0.0)
