"""Dataset statistics: sizes, polyp area fractions, polyp counts and mask binarity."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from .pairs import Pair, read_mask


def _one(pair: Pair) -> dict:
    image_path, mask_path = pair
    mask, was_binary = read_mask(mask_path, return_binary_flag=True)
    n_labels, _ = cv2.connectedComponents(mask)
    with Image.open(image_path) as image:
        width, height = image.size
    return {
        "name": image_path.stem,
        "width": width,
        "height": height,
        "area_fraction": float(mask.mean()),
        "polyps": n_labels - 1,
        "binary": was_binary,
    }


def pair_stats(pairs: list[Pair], source: str = "") -> pd.DataFrame:
    """One row per pair: ``source``, ``name``, ``width``, ``height``, ``area_fraction``
    (polyp pixels / all pixels), ``polyps`` (8-connected components of the mask) and
    ``binary`` (whether the mask file held only 0 and 255)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(_one, pairs))
    frame = pd.DataFrame(rows)
    frame.insert(0, "source", source)
    return frame


def summarize(stats: pd.DataFrame) -> pd.DataFrame:
    """Per source: frame count, sizes seen, mean and median polyp area, polyp counts, binarity."""
    grouped = stats.groupby("source", sort=False)
    return pd.DataFrame(
        {
            "frames": grouped.size(),
            "sizes": grouped.apply(
                lambda g: ", ".join(sorted({f"{w}x{h}" for w, h in zip(g.width, g.height)})), include_groups=False
            ),
            "mean area %": grouped.area_fraction.mean().mul(100).round(1),
            "median area %": grouped.area_fraction.median().mul(100).round(1),
            "no polyp": grouped.polyps.apply(lambda p: int((p == 0).sum())),
            "2+ polyps": grouped.polyps.apply(lambda p: int((p >= 2).sum())),
            "binary masks %": grouped.binary.mean().mul(100).round(1),
        }
    )


def area_fraction_bins(stats: pd.DataFrame, bins=(0, 0.01, 0.05, 0.1, 0.2, 0.4, 1.0)) -> pd.DataFrame:
    """Count of frames per polyp-area bin and source (the histogram as a table)."""
    labels = [f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(bins[:-1], bins[1:])]
    binned = pd.cut(stats.area_fraction, bins=np.array(bins), labels=labels, include_lowest=True)
    return pd.crosstab(stats.source, binned).reindex(columns=labels, fill_value=0)
