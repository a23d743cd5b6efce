"""Figures of frames and maps: overlays, predictions, attention maps, covariance matrices, error maps."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Patch

from ..config import project_root, runs_dir
from ..data.pairs import Pair, read_image, read_mask
from ..data.transforms import denormalize
from ..kdas.losses import boundary_weights
from ..metrics import dice_at

POLYP_GREEN = (60, 255, 90)


def save_figure(fig, name: str, folder: str | Path | None = None, dpi: int = 110) -> Path:
    """Save ``fig`` as ``runs/figures/<name>.png`` (or ``folder/<name>.png``) and return the path. The
    lessons' figures (no ``folder``) keep one style whatever ``name`` holds: lower case, words joined by ``_``
    (``"07_teacher-strength"`` -> ``07_teacher_strength.png``); a figure saved beside a table (``folder``)
    keeps the table's name (``ablation-standard.png`` beside ``ablation-standard.csv``)."""
    if folder is None:
        folder, name = runs_dir() / "figures", figure_name(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def figure_name(name: str) -> str:
    """``name`` in the figures' one style: lower case, runs of anything but letters and digits as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def overlay(image: np.ndarray, mask: np.ndarray, colour=POLYP_GREEN, alpha: float = 0.35) -> np.ndarray:
    """``(H, W, 3) uint8`` frame with the ``(H, W)`` {0, 1} mask tinted and outlined.

    Only the mask's bounding box is touched, so a video frame costs a few milliseconds."""
    out = np.array(image[..., :3], dtype=np.uint8, copy=True)
    selected = np.asarray(mask).astype(bool)
    rows, cols = np.flatnonzero(selected.any(axis=1)), np.flatnonzero(selected.any(axis=0))
    if rows.size == 0:
        return out
    thickness = max(1, image.shape[0] // 200)
    pad = thickness  # the outline may reach this far outside the mask
    box = (slice(max(rows[0] - pad, 0), rows[-1] + 1 + pad), slice(max(cols[0] - pad, 0), cols[-1] + 1 + pad))
    region, inside = out[box], selected[box].astype(np.uint8)
    tinted = cv2.add(cv2.addWeighted(region, 1 - alpha, region, 0, 0), tuple(alpha * c for c in colour) + (0,))
    cv2.copyTo(tinted, inside, region)  # (1 - alpha) frame + alpha colour, inside the mask only
    contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(region, contours, -1, colour, thickness)
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
        axes[row, 0].text(
            -0.08, 0.5, name, transform=axes[row, 0].transAxes, rotation=90, va="center", ha="right", fontsize=10
        )
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


# short names of albumentations' transforms for the figure's titles (Resize, Normalize, ToTensorV2: every draw)
_AUGMENTATION_NAMES = {
    "HorizontalFlip": "h-flip",
    "VerticalFlip": "v-flip",
    "RandomRotate90": "rot90",
    "Affine": "affine",
    "ColorJitter": "colour",
    "GaussianBlur": "blur",
    "MotionBlur": "motion blur",
}


def show_augmentations(image: np.ndarray, mask: np.ndarray, transform, n: int = 7, size: float = 2.2):
    """The original frame, then ``n`` draws of ``transform`` (an albumentations pipeline that
    ends with normalisation and ``ToTensorV2``), each with its transformed mask outlined and, where the
    pipeline records them (``Compose(save_applied_params=True)``), the transforms it applied in its title
    (a draw can apply none: every transform has its own probability)."""
    fig, axes = plt.subplots(1, n + 1, figsize=((n + 1) * size, size + 0.3))
    axes[0].imshow(overlay(image, mask))
    axes[0].set_title("original", fontsize=9)
    for i, ax in enumerate(axes[1:]):
        out = transform(image=image, mask=mask)
        ax.imshow(overlay(denormalize(out["image"]), np.asarray(out["mask"]).astype(np.uint8)))
        title = f"draw {i + 1}"
        if "applied_transforms" in out:
            applied = [
                _AUGMENTATION_NAMES[name] for name, _ in out["applied_transforms"] if name in _AUGMENTATION_NAMES
            ]
            title += "\n" + (textwrap.fill(", ".join(applied), 22) if applied else "nothing (resize only)")
        ax.set_title(title, fontsize=8)
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
        ax.hist(
            values,
            bins=edges,
            weights=weights,
            histtype="step",
            linewidth=1.6,
            label=f"{source} (n={len(group)}, {empty} without polyp)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("polyp area / frame area")
    ax.set_ylabel("fraction of frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def show_weight_map(image: np.ndarray, mask: np.ndarray, size: float = 2.8):
    """The structure loss's boundary weights on one frame: frame, mask, ``avgpool_31(G)`` and
    ``w = 1 + 5 |avgpool_31(G) - G|`` (with a colour bar)."""
    g = torch.from_numpy(mask.astype(np.float32))[None, None]
    pooled = F.avg_pool2d(g, kernel_size=31, stride=1, padding=15)[0, 0].numpy()
    weights = boundary_weights(g)[0, 0].numpy()
    fig, axes = plt.subplots(1, 4, figsize=(4 * size + 0.6, size))
    axes[0].imshow(image)
    axes[0].set_title("frame", fontsize=9)
    axes[1].imshow(mask, cmap="gray")
    axes[1].set_title("mask G", fontsize=9)
    axes[2].imshow(pooled, cmap="gray", vmin=0, vmax=1)
    axes[2].set_title("avgpool$_{31}$(G)", fontsize=9)
    shown = axes[3].imshow(weights, cmap="magma", vmin=1, vmax=6)
    axes[3].set_title(f"w = 1 + 5|avgpool - G|  (max {weights.max():.2f})", fontsize=9)
    fig.colorbar(shown, ax=axes[3], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_predictions(samples: list[dict], size: float = 2.3):
    """One column per sample: the frame with the ground truth outlined, the predicted
    probability map, and the thresholded prediction with true positives green, false
    positives red and missed polyp blue. ``samples`` come from
    :func:`~kdas_utils.evaluate.predict_samples`."""
    fig, axes = plt.subplots(3, len(samples), figsize=(len(samples) * size, 3 * size), squeeze=False)
    for col, sample in enumerate(samples):
        mask, probability = sample["mask"], sample["probability"]
        axes[0, col].imshow(overlay(sample["image"], mask))
        axes[0, col].set_title(sample["name"][:18], fontsize=7)
        shown = axes[1, col].imshow(probability, cmap="viridis", vmin=0, vmax=1)
        axes[1, col].set_title("sigmoid(P1 + P2)", fontsize=8)
        axes[2, col].imshow(_errors(probability, mask))
        empty = "\n(no polyp: 0 by the protocol)" if not mask.any() else ""  # metrics.dice_at's convention
        axes[2, col].set_title(f"Dice {sample['dice']:.3f}{empty}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    axes[2, 0].text(
        0, -0.08, "green: hit   red: false alarm   blue: missed", transform=axes[2, 0].transAxes, fontsize=7, va="top"
    )
    fig.tight_layout()
    # the colour bar in an axes of its own right of the row, so that every column keeps the same width
    box = axes[1, -1].get_position()
    bar = fig.colorbar(shown, cax=fig.add_axes((box.x1 + 0.01, box.y0, 0.012, box.height)))
    bar.ax.tick_params(labelsize=7)
    return fig


def show_matrices(rows: dict[str, dict[str, np.ndarray]], cmap: str = "RdBu_r", size: float = 2.6):
    """A grid of matrices (e.g. Sym(P1) or channel covariances): ``{row: {column: (N, N) array}}``.
    Each row shares a symmetric colour scale, so teacher and student compare directly."""
    n_cols = max(len(cols) for cols in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(n_cols * size + 0.8, len(rows) * size), squeeze=False)
    for r, (row, cols) in enumerate(rows.items()):
        limit = max(float(np.abs(m).max()) for m in cols.values()) or 1.0
        for c, (name, matrix) in enumerate(cols.items()):
            shown = axes[r, c].imshow(matrix, cmap=cmap, vmin=-limit, vmax=limit)
            axes[r, c].set_title(f"{name}", fontsize=8)
        axes[r, 0].set_ylabel(row, fontsize=9)
        fig.colorbar(shown, ax=axes[r, len(cols) - 1], fraction=0.046, pad=0.04)
        for c in range(len(cols), n_cols):
            axes[r, c].axis("off")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def metric_example_maps(size: int = 96, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A disk-shaped mask and four imperfect predictions of it, each wrong in another way, to
    show what each metric rewards: ``(mask, {name: map in [0, 1]})``."""
    yy, xx = np.mgrid[:size, :size]
    disk = lambda cy, cx, r: ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.float64)  # noqa: E731
    mask = disk(size / 2, size / 2, size / 4)
    rng = np.random.default_rng(seed)
    soft = cv2.GaussianBlur(mask, (0, 0), size / 24)
    speckled = np.clip(mask * (rng.random(mask.shape) > 0.35) + (rng.random(mask.shape) > 0.97), 0, 1)
    shifted = disk(size / 2 + size / 8, size / 2 + size / 8, size / 4)
    small = disk(size / 2, size / 2, size / 6)
    return mask.astype(bool), {"soft edges": soft, "speckled": speckled, "shifted": shifted, "too small": small}


def show_metric_examples(
    mask: np.ndarray,
    maps: dict[str, np.ndarray],
    scores: dict[str, dict],
    size: float = 2.2,
    keys=("Dice@0.5", "meanDice", "Smeasure", "meanEm", "wFmeasure"),
):
    """The mask, then each prediction with its scores written below it."""
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=((len(maps) + 1) * size, size + 1.1))
    axes[0].imshow(mask, cmap="gray")
    axes[0].set_title("mask", fontsize=9)
    for ax, (name, pred) in zip(axes[1:], maps.items()):
        ax.imshow(pred, cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.text(
            0.5,
            -0.05,
            "\n".join(f"{k} {scores[name][k]:.3f}" for k in keys),
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=7,
            family="monospace",
        )
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


ERROR_COLOURS = (((60, 200, 90), "hit"), ((230, 60, 50), "false alarm"), ((60, 110, 240), "missed polyp"))


def _errors(prob: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8``: the prediction ``prob > 0.5`` against the mask, in :data:`ERROR_COLOURS`."""
    predicted, truth = prob > 0.5, mask > 0
    out = np.zeros((*mask.shape, 3), np.uint8)
    for (colour, _), where in zip(ERROR_COLOURS, (predicted & truth, predicted & ~truth, ~predicted & truth)):
        out[where] = colour
    return out


def show_comparison(frames: list[dict], maps: dict[str, list[np.ndarray]], size: float = 2.2):
    """One row per frame (dicts with ``name``, ``image``, ``mask`` at the original size): the
    frame with the mask outlined, then each model's thresholded prediction with hits green,
    false alarms red and misses blue (the legend below), titled with its Dice at 0.5."""
    fig, axes = plt.subplots(
        len(frames), len(maps) + 1, figsize=((len(maps) + 1) * size, len(frames) * size + 0.4), squeeze=False
    )
    for r, frame in enumerate(frames):
        axes[r, 0].imshow(overlay(frame["image"], frame["mask"]))
        axes[r, 0].set_title("\n".join(textwrap.wrap(frame["name"], 24)), fontsize=7)
        for c, (model, model_maps) in enumerate(maps.items(), start=1):
            prob = model_maps[r]
            dice = dice_at(torch.as_tensor(prob)[None], torch.as_tensor(frame["mask"], dtype=torch.float32)[None])
            axes[r, c].imshow(_errors(prob, frame["mask"]))
            axes[r, c].set_title(f"{model}: Dice {dice.item():.2f}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    legend = [Patch(color=np.array(c) / 255, label=label) for c, label in ERROR_COLOURS]
    fig.legend(handles=legend, loc="lower center", ncols=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def shown_path(path, root=None) -> str:
    """How a notebook prints ``path``: relative to the project folder (``root``, default
    :func:`kdas_utils.config.project_root`) when it lies inside it, else
    ``<outside the project folder>/<parent>/<name>``, so that outputs never show a machine's folders."""
    path = Path(path).expanduser().resolve()
    root = Path(root if root is not None else project_root()).expanduser().resolve()
    if path.is_relative_to(root):
        return path.relative_to(root).as_posix() or "."
    return f"<outside the project folder>/{path.parent.name}/{path.name}"


def phantom_twin_maps(
    size: int = 48, centre: tuple[int, int] = (12, 34), radius: int = 6, polyp: float = 4.0, background: float = -4.0
) -> dict[str, np.ndarray]:
    """A logit map ``P`` with one disk-shaped polyp (``polyp`` inside, ``background`` outside) at
    ``centre`` = (row, column), its transpose and ``P + P.T``: ``{"P", "P.T", "P + P.T"}``, float32.

    The transpose mirrors the map about its diagonal, so a polyp off the diagonal appears in
    ``P + P.T`` twice, at ``(row, col)`` and at ``(col, row)``, with the same value
    ``polyp + background`` at both: the released SGM's target cannot tell the polyp from its twin."""
    yy, xx = np.mgrid[0:size, 0:size]
    disk = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    p = np.where(disk, polyp, background).astype(np.float32)
    return {"P": p, "P.T": p.T.copy(), "P + P.T": p + p.T}


def show_phantom_twin(maps: dict[str, np.ndarray] | None = None, size: float = 2.6):
    """:func:`phantom_twin_maps` side by side on one colour scale, with the diagonal (the mirror
    line of the transpose) dashed in each panel."""
    maps = phantom_twin_maps() if maps is None else maps
    titles = {
        "P": "P: one polyp",
        "P.T": "Pᵀ: mirrored about the diagonal",
        "P + P.T": "P + Pᵀ: polyp and phantom twin",
    }
    limit = max(float(np.abs(m).max()) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(1, len(maps), figsize=(len(maps) * size + 0.8, size + 0.3), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], maps.items()):
        shown = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        n = matrix.shape[0]
        ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], "k--", lw=0.8)
        ax.set_title(titles.get(name, name), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=list(axes[0]), fraction=0.02, pad=0.02, label="logit")
    return fig


def show_prediction(frame: np.ndarray, probability: np.ndarray, mask: np.ndarray, title: str = "", size: float = 2.6):
    """One frame's prediction in four panels: the ``(H, W, 3) uint8`` frame, the ``(H, W)``
    probability map in [0, 1], the binary mask and the overlay (:func:`overlay`)."""
    fig, axes = plt.subplots(1, 4, figsize=(4 * size, size * frame.shape[0] / frame.shape[1] + 0.4))
    panels = [("frame", frame, {}), ("probability", probability, {"cmap": "magma", "vmin": 0, "vmax": 1})]
    panels += [("mask", mask, {"cmap": "gray", "vmin": 0, "vmax": 1}), ("overlay", overlay(frame, mask), {})]
    for ax, (name, image, style) in zip(axes, panels):
        ax.imshow(image, **style)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def show_overlays(images: list[np.ndarray], titles: list[str], size: float = 2.6):
    """A row of ``(H, W, 3) uint8`` overlays (e.g. those ``kdas predict`` writes), one title each."""
    fig, axes = plt.subplots(1, len(images), figsize=(len(images) * size, size + 0.3), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig
