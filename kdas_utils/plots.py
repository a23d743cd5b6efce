"""Figures the notebooks draw. Every function returns a matplotlib ``Figure``."""

from __future__ import annotations

import cv2
import matplotlib.pyplot as plt
import numpy as np

from .data.pairs import Pair, read_image, read_mask

POLYP_GREEN = (60, 255, 90)


def overlay(image: np.ndarray, mask: np.ndarray, colour=POLYP_GREEN, alpha: float = 0.35) -> np.ndarray:
    """``(H, W, 3) uint8`` frame with the ``(H, W)`` {0, 1} mask tinted and outlined."""
    out = image.astype(np.float32).copy()
    selected = mask.astype(bool)
    out[selected] = (1 - alpha) * out[selected] + alpha * np.array(colour, np.float32)
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    thickness = max(1, image.shape[0] // 200)
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def show_pairs(groups: dict[str, list[Pair]], per_group: int = 4, size: float = 2.2):
    """A grid: one row per group (e.g. ``{"Kvasir-SEG": pairs, "synthetic": pairs}``), each
    cell a frame with its mask overlaid. Frames are taken evenly spaced through each list."""
    fig, axes = plt.subplots(len(groups), per_group, figsize=(per_group * size, len(groups) * size), squeeze=False)
    for row, (name, pairs) in enumerate(groups.items()):
        picks = np.linspace(0, len(pairs) - 1, per_group).round().astype(int) if pairs else []
        for col in range(per_group):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(picks):
                image_path, mask_path = pairs[picks[col]]
                ax.imshow(overlay(read_image(image_path), read_mask(mask_path)))
                ax.set_title(image_path.stem[:22], fontsize=7)
        axes[row, 0].text(-0.08, 0.5, name, transform=axes[row, 0].transAxes, rotation=90,
                          va="center", ha="right", fontsize=10)
    fig.tight_layout()
    return fig


def show_layers(layers: dict[str, np.ndarray], mask: np.ndarray, size: float = 2.4):
    """The synthetic generator's layers, left to right, then the mask overlaid."""
    n = len(layers) + 1
    fig, axes = plt.subplots(1, n, figsize=(n * size, size))
    for ax, (name, layer) in zip(axes, layers.items()):
        ax.imshow(layer)
        ax.set_title(name, fontsize=9)
    axes[-1].imshow(overlay(list(layers.values())[-1], mask))
    axes[-1].set_title("mask (ground truth)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_augmentations(image: np.ndarray, mask: np.ndarray, transform, n: int = 7, size: float = 2.2):
    """The original frame, then ``n`` draws of ``transform`` (an albumentations pipeline that
    ends with normalisation and ``ToTensorV2``), each with its transformed mask outlined."""
    from .data.transforms import denormalize

    fig, axes = plt.subplots(1, n + 1, figsize=((n + 1) * size, size))
    axes[0].imshow(overlay(image, mask))
    axes[0].set_title("original", fontsize=9)
    for i, ax in enumerate(axes[1:]):
        out = transform(image=image, mask=mask)
        ax.imshow(overlay(denormalize(out["image"]), np.asarray(out["mask"]).astype(np.uint8)))
        ax.set_title(f"draw {i + 1}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_area_histograms(stats, bins: int = 24):
    """Polyp area fraction per frame, one step histogram per source, as the fraction of that
    source's frames in each log-spaced bin. Frames with no polyp are left out (the legend
    counts them)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    edges = np.logspace(-3, 0, bins)
    for source, group in stats.groupby("source", sort=False):
        values = group.area_fraction[group.area_fraction > 0].clip(lower=edges[0])
        weights = np.full(len(values), 1 / len(group))
        empty = len(group) - len(values)
        ax.hist(values, bins=edges, weights=weights, histtype="step", linewidth=1.6,
                label=f"{source} (n={len(group)}, {empty} without polyp)")
    ax.set_xscale("log")
    ax.set_xlabel("polyp area / frame area")
    ax.set_ylabel("fraction of frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
