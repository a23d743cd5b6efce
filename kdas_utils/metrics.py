"""The field's segmentation metrics, computed the way PraNet, Polyp-PVT and KDAS report them.

Every image is scored on its own, then the dataset score is the mean over images. Following the
reference evaluators (PraNet's MATLAB code and its Python port ``pysodmetrics``, which
``tests/test_metrics.py`` checks us against to 1e-4):

* the prediction is a map in [0, 1] at the mask's size; it is **min-max normalised** per image
  (unless it is constant) and the mask is binary;
* **Dice and IoU at 256 thresholds**: the map is quantised to 0..255 and binarised at
  ``>= t`` for t = 0..255. ``meanDice`` / ``meanIoU`` (the numbers of the KDAS and Polyp-PVT
  tables) are the mean over thresholds of the dataset-mean curve; ``maxDice`` is its maximum.
  A threshold where Dice is 0 / 0 (no mask, no prediction) counts as 0, as in the reference;
* ``Dice@0.5``: Dice of ``probability > 0.5`` on the probability map itself (before the min-max
  normalisation), with :func:`dice_at`, the one Dice at 0.5 of the series: validation, model
  selection, the ablation and the evaluation tables all use it. An image whose mask and
  prediction are both empty scores 0, as in the reference evaluators (0 / 0 counts as 0);
* ``Smeasure`` (structure measure, alpha 0.5): object-aware plus region-aware similarity;
* ``wFmeasure`` (weighted F-measure, beta 1): errors weighted by their dependency on
  neighbours and by their distance to the object; 0 for an empty mask;
* ``meanEm`` / ``maxEm`` (enhanced-alignment measure): mean and maximum over the 256
  thresholds of the dataset-mean E-measure curve;
* ``MAE``: mean absolute error between the map and the mask.

Each metric is vectorised with NumPy over the pixels and the thresholds of one image (a
histogram of the quantised map gives all 256 confusion matrices at once), so a few hundred
frames take seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

EPS = np.spacing(1)  # MATLAB's eps, as the reference implementations use
KEYS = ("meanDice", "meanIoU", "maxDice", "Dice@0.5", "Smeasure", "wFmeasure", "meanEm", "maxEm", "MAE")


def normalize_map(pred: np.ndarray) -> np.ndarray:
    """Min-max normalise a map to [0, 1] (a constant map is left as it is), as float64."""
    pred = np.asarray(pred, dtype=np.float64)
    low, high = pred.min(), pred.max()
    return (pred - low) / (high - low) if high != low else pred


def _divide(numerator, denominator) -> np.ndarray:
    """``numerator / denominator`` with 0 where the denominator is 0 (the reference convention)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def threshold_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(tp, fp)`` for the 256 binarisations ``pred >= t``, t = 255, 254, ..., 0 (the reference's
    order), from the histograms of the quantised map inside and outside the mask."""
    levels = (pred * 255).astype(np.uint8)
    tp = np.cumsum(np.bincount(levels[gt], minlength=256)[::-1])
    fp = np.cumsum(np.bincount(levels[~gt], minlength=256)[::-1])
    return tp, fp


def dice_iou_curves(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dice, iou)``, each ``(256,)``, for the thresholds of :func:`threshold_counts`."""
    tp, fp = threshold_counts(pred, gt)
    fn = np.count_nonzero(gt) - tp
    return _divide(2 * tp, 2 * tp + fp + fn), _divide(tp, tp + fp + fn)


def dice_at(probability: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``(B,)`` float64 Dice of ``probability > threshold`` against ``mask > 0.5``, per image.

    ``probability`` and ``mask`` are ``(B, ...)`` tensors of the same shape (e.g. ``(B, 1, H, W)``;
    pass ``torch.sigmoid(logits)``). The rule: ``2 |P & G| / (|P| + |G|)``, and **0 when both are
    empty** (0 / 0 counts as 0, as in PraNet's evaluator and pysodmetrics).
    """
    if probability.shape != mask.shape:
        raise ValueError(f"probability {tuple(probability.shape)} and mask {tuple(mask.shape)} differ in shape")
    prediction = (probability.float() > threshold).flatten(1)
    target = (mask > 0.5).flatten(1)
    inter = (prediction & target).sum(1, dtype=torch.float64)  # pixel counts, exact in float64
    total = prediction.sum(1, dtype=torch.float64) + target.sum(1, dtype=torch.float64)
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.zeros_like(total))


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the map and the binary mask."""
    return float(np.mean(np.abs(pred - gt)))


# --------------------------------------------------------------------------- S-measure


def _s_object(x: np.ndarray) -> float:
    mean = np.mean(x)
    std = np.std(x, ddof=1) if x.size > 1 else 0.0
    return 2 * mean / (mean**2 + 1 + std + EPS)


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    n = pred.size
    x, y = np.mean(pred), np.mean(gt)
    sigma_x = np.sum((pred - x) ** 2) / (n - 1 + EPS)
    sigma_y = np.sum((gt - y) ** 2) / (n - 1 + EPS)
    sigma_xy = np.sum((pred - x) * (gt - y)) / (n - 1 + EPS)
    alpha = 4 * x * y * sigma_xy
    beta = (x**2 + y**2) * (sigma_x + sigma_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Structure measure (Fan et al. 2017): ``alpha * S_object + (1 - alpha) * S_region``."""
    y = np.mean(gt)
    if y == 0:
        return float(1 - np.mean(pred))
    if y == 1:
        return float(np.mean(pred))
    fg = _s_object(pred[gt]) * y
    bg = _s_object((1 - pred)[~gt]) * (1 - y)
    h, w = gt.shape
    cy, cx = (int(c) + 1 for c in np.argwhere(gt).mean(axis=0).round())
    area = h * w
    weights = (cx * cy / area, cy * (w - cx) / area, (h - cy) * cx / area)
    weights += (1 - sum(weights),)
    quadrants = (
        (slice(0, cy), slice(0, cx)),
        (slice(0, cy), slice(cx, w)),
        (slice(cy, h), slice(0, cx)),
        (slice(cy, h), slice(cx, w)),
    )
    region = sum(_ssim(pred[q], gt[q]) * wq for q, wq in zip(quadrants, weights))
    return float(max(0.0, alpha * (fg + bg) + (1 - alpha) * region))


# --------------------------------------------------------------------------- weighted F-measure


def _gaussian_kernel(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)``."""
    r = (size - 1) / 2
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    return kernel / kernel.sum()


def weighted_f_measure(pred: np.ndarray, gt: np.ndarray, beta: float = 1.0) -> float:
    """Weighted F-measure (Margolin et al. 2014); 0 for an empty mask."""
    if not gt.any():
        return 0.0
    distance, nearest = ndimage.distance_transform_edt(~gt, return_indices=True)
    error = np.abs(pred - gt)
    spread = error.copy()
    outside = ~gt
    spread[outside] = error[
        nearest[0][outside], nearest[1][outside]
    ]  # background takes its nearest object pixel's error
    blurred = ndimage.convolve(spread, _gaussian_kernel(), mode="constant", cval=0)
    dependent = np.where(gt & (blurred < error), blurred, error)
    importance = np.where(outside, 2 - np.exp(np.log(0.5) / 5 * distance), 1.0)
    weighted = dependent * importance
    tp = np.sum(gt) - np.sum(weighted[gt])
    fp = np.sum(weighted[outside])
    recall = 1 - np.mean(weighted[gt])
    precision = tp / (tp + fp + EPS)
    return float((1 + beta) * recall * precision / (recall + beta * precision + EPS))


# --------------------------------------------------------------------------- E-measure


def e_measure_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(256,)`` enhanced-alignment measure (Fan et al. 2018) at the 256 thresholds."""
    size = gt.size
    gt_fg = np.count_nonzero(gt)
    tp, fp = threshold_counts(pred, gt)
    pred_fg = tp + fp
    pred_bg = size - pred_fg
    if gt_fg == 0:
        enhanced = pred_bg.astype(np.float64)
    elif gt_fg == size:
        enhanced = pred_fg.astype(np.float64)
    else:
        fn = gt_fg - tp
        tn = pred_bg - fn
        mean_pred = pred_fg / size
        mean_gt = gt_fg / size
        enhanced = np.zeros(256)
        # the four (prediction, truth) combinations: fg/fg, fg/bg, bg/fg, bg/bg
        for count, a, b in (
            (tp, 1 - mean_pred, 1 - mean_gt),
            (fp, 1 - mean_pred, -mean_gt),
            (fn, -mean_pred, 1 - mean_gt),
            (tn, -mean_pred, -mean_gt),
        ):
            align = 2 * a * b / (a**2 + b**2 + EPS)
            enhanced += (align + 1) ** 2 / 4 * count
    return enhanced / (size - 1 + EPS)


# --------------------------------------------------------------------------- per image, per dataset


def image_scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Every metric of one image: scalars and the 256-threshold curves (``dice``, ``iou``, ``em``).
    ``pred`` is min-max normalised here; ``gt`` is binarised at 0.5."""
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction {pred.shape} and mask {gt.shape} differ in shape; resize the prediction "
            f"to the mask's size first"
        )
    dice_half = float(
        dice_at(
            torch.as_tensor(np.asarray(pred, dtype=np.float32))[None],
            torch.as_tensor(np.asarray(gt, dtype=np.float32))[None],
        )[0]
    )
    pred = normalize_map(pred)
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError(f"prediction values must lie in [0, 1] (got {pred.min():.3g} to {pred.max():.3g})")
    gt = np.asarray(gt) > 0.5
    dice, iou = dice_iou_curves(pred, gt)
    return {
        "dice": dice,
        "iou": iou,
        "em": e_measure_curve(pred, gt),
        "Dice@0.5": dice_half,
        "Smeasure": s_measure(pred, gt),
        "wFmeasure": weighted_f_measure(pred, gt),
        "MAE": mae(pred, gt),
    }


def summarize(per_image: list[dict]) -> dict[str, float]:
    """Dataset scores from :func:`image_scores` results: means over images, and for the curve
    metrics the mean (``mean*``) and maximum (``max*``) over thresholds of the mean curve."""
    if not per_image:
        raise ValueError("no images to summarise")
    curve = {k: np.mean([s[k] for s in per_image], axis=0) for k in ("dice", "iou", "em")}
    out = {"meanDice": curve["dice"].mean(), "meanIoU": curve["iou"].mean(), "maxDice": curve["dice"].max()}
    out |= {k: np.mean([s[k] for s in per_image]) for k in ("Dice@0.5", "Smeasure", "wFmeasure")}
    out |= {"meanEm": curve["em"].mean(), "maxEm": curve["em"].max(), "MAE": np.mean([s["MAE"] for s in per_image])}
    return {k: float(out[k]) for k in KEYS}


def evaluate_maps(preds: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, float]:
    """The dataset scores of ``preds`` (float maps in [0, 1]) against ``masks`` (binary, same
    shapes): ``meanDice``, ``meanIoU``, ``maxDice``, ``Dice@0.5``, ``Smeasure``, ``wFmeasure``,
    ``meanEm``, ``maxEm``, ``MAE``, each over the images as described in the module docstring."""
    if len(preds) != len(masks):
        raise ValueError(f"{len(preds)} predictions but {len(masks)} masks")
    return summarize([image_scores(p, m) for p, m in zip(preds, masks)])


def dice_curve(per_image: list[dict]) -> np.ndarray:
    """``(256,)`` dataset-mean Dice against the threshold t = 0..255 (ascending, for plots)."""
    return np.mean([s["dice"] for s in per_image], axis=0)[::-1]
