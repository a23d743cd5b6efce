"""Figures the notebooks draw. Every function takes arrays or tables and returns a matplotlib
``Figure``: nothing here loads data or runs a network (the frames a figure shows come from
:func:`kdas_utils.runs.figure_samples`, predictions on them from
:func:`kdas_utils.evaluate.predict_samples`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .config import project_root, runs_dir
from .data.pairs import Pair, read_image, read_mask
from .data.transforms import denormalize
from .distill.maps import MAP_SCALE
from .evaluate import score_columns
from .losses import boundary_weights
from .metrics import dice_at

POLYP_GREEN = (60, 255, 90)


def save_figure(fig, name: str, folder: str | Path | None = None, dpi: int = 110) -> Path:
    """Save ``fig`` as ``runs/figures/<name>.png`` (or under ``folder``) and return the path."""
    folder = Path(folder) if folder is not None else runs_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


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


def show_augmentations(image: np.ndarray, mask: np.ndarray, transform, n: int = 7, size: float = 2.2):
    """The original frame, then ``n`` draws of ``transform`` (an albumentations pipeline that
    ends with normalisation and ``ToTensorV2``), each with its transformed mask outlined."""
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


def _finish_epoch_axes(fig, axes, title: str = ""):
    """Integer epoch ticks, a light grid and a legend on each axis; the title; a tight layout."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], steps: list[dict] | None = None, title: str = ""):
    """Training curves from :class:`~kdas_utils.engine.TrainResult`: the loss per step (faint)
    and per epoch with the validation loss (left), and train / validation Dice per epoch (right)."""
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = [h["epoch"] for h in history]
    if steps:
        per_epoch = max(s["step"] for s in steps) / max(epochs)
        loss_ax.plot(
            [s["step"] / per_epoch for s in steps],
            [s["loss"] for s in steps],
            color="tab:blue",
            alpha=0.25,
            lw=0.8,
            label="train (step)",
        )
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train (epoch mean)")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], "s-", color="tab:orange", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="L_st(P1) + L_st(P2)", title="loss")
    dice_ax.plot(epochs, [h["train_dice"] for h in history], "o-", color="tab:blue", label="train")
    dice_ax.plot(epochs, [h["val_dice"] for h in history], "s-", color="tab:orange", label="validation")
    best = max(history, key=lambda h: h["val_dice"])
    dice_ax.axvline(best["epoch"], color="grey", ls=":", lw=1)
    dice_ax.annotate(
        f"selected: epoch {best['epoch']}\nval Dice {best['val_dice']:.3f}",
        (best["epoch"], best["val_dice"]),
        textcoords="offset points",
        xytext=(-10, -30),
        ha="right",
        fontsize=8,
    )
    dice_ax.set(xlabel="epoch", ylabel="mean Dice at 0.5", title="Dice", ylim=(0, 1))
    return _finish_epoch_axes(fig, (loss_ax, dice_ax), title)


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
    fig.colorbar(shown, ax=axes[1, -1], fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    axes[2, 0].text(
        0, -0.08, "green: hit   red: false alarm   blue: missed", transform=axes[2, 0].transAxes, fontsize=7, va="top"
    )
    fig.tight_layout()
    return fig


def show_attention_grid(
    explorer,
    frames: list[int],
    layers=("stage1", "stage2", "stage3", "stage4", "P1", "P2"),
    p: float = 2.0,
    tau: float = 2.0,
    opacity: float = 0.6,
    size: float = 1.9,
):
    """Rows: each frame x each model of an :class:`~kdas_utils.widgets.AttentionExplorer`;
    columns: the frame with its mask, then each layer's attention map overlaid."""
    models = list(explorer.models)
    rows = [(f, m) for f in frames for m in models]
    fig, axes = plt.subplots(
        len(rows), len(layers) + 1, figsize=((len(layers) + 1) * size, len(rows) * size), squeeze=False
    )
    for r, (frame, model) in enumerate(rows):
        mask = explorer.samples[frame]["mask"][0].numpy().astype(np.uint8)
        axes[r, 0].imshow(overlay(explorer.frames[frame], mask))
        axes[r, 0].set_ylabel(model, fontsize=9)
        for c, layer in enumerate(layers, start=1):
            axes[r, c].imshow(explorer.render(frame, model, layer, p, tau, opacity))
            if r == 0:
                axes[r, c].set_title(layer, fontsize=9)
        axes[r, 0].set_title(f"{model}: {explorer.samples[frame]['name'][:14]}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    _attention_colour_bar(fig, axes)
    return fig


def _attention_colour_bar(fig, axes) -> None:
    """The scale of :class:`~kdas_utils.widgets.AttentionExplorer`'s overlays: 1 is the frame's
    mean energy (stages) or the uniform distribution (heads)."""
    bar = fig.colorbar(ScalarMappable(Normalize(0, MAP_SCALE), "jet"), ax=axes, fraction=0.02, pad=0.01)
    bar.set_label("x the frame's mean (stages) / x uniform (heads)", fontsize=8)


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


def plot_runs(histories: dict[str, list[dict]], title: str = ""):
    """Validation Dice and the segmentation part of the training loss per epoch, one line per run."""
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        loss_ax.plot(epochs, [h["train_seg"] for h in history], "o-", label=name)
        dice_ax.plot(epochs, [h["val_dice"] for h in history], "o-", label=name)
    loss_ax.set(xlabel="epoch", ylabel="L_seg (train)", title="segmentation loss")
    dice_ax.set(xlabel="epoch", ylabel="validation mean Dice at 0.5", title="validation Dice", ylim=(0, 1))
    return _finish_epoch_axes(fig, (loss_ax, dice_ax), title)


def plot_validation_curves(curves: dict, title: str = "validation Dice per epoch"):
    """Validation Dice against the epoch, one line per run: ``{label: table}`` with the columns
    ``epoch`` and ``val_dice`` (a DataFrame, or a list of epoch records), such as the teacher's
    curve and the patient runs of :mod:`kdas_utils.study`."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, curve in curves.items():
        rows = _records(curve)
        ax.plot([row["epoch"] for row in rows], [row["val_dice"] for row in rows], "o-", ms=3, label=label)
    ax.set(xlabel="epoch", ylabel="validation mean Dice at 0.5", ylim=(0, 1))
    return _finish_epoch_axes(fig, (ax,), title)


def _records(curve) -> list[dict]:
    return curve.to_dict("records") if hasattr(curve, "to_dict") else list(curve)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n > 1 else ''}"


def plot_ablation(table, sets: list[str] | None = None):
    """Each arm's mean Dice *minus the student alone's* (``no-kd``), one group of bars per data split,
    from :func:`kdas_utils.runs.run_ablation`: differences of a hundredth stay visible.

    Bars: the difference of the means. Error bars: the seed spread it is read against (the larger of
    the arm's and the student alone's standard deviations over seeds, as
    :func:`kdas_utils.study.against_alone`; none where both have one seed). Dots: each seed of the arm
    minus the student alone's mean. The tick labels give the student alone's own mean. A table
    without ``no-kd`` rows (e.g. an alpha sweep's) is drawn as mean Dice on an axis zoomed to the data."""
    sets = sets or score_columns(table)
    stats = table.groupby("arm", sort=False)[sets]
    means, stds, counts = stats.mean(), stats.std(), stats.size()
    relative = "no-kd" in means.index
    base = means.loc["no-kd"] if relative else means.iloc[0] * 0
    arms = [arm for arm in means.index if not (relative and arm == "no-kd")]
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(sets) + 2), 3.8))
    for i, arm in enumerate(arms):
        x = np.arange(len(sets)) + (i - (len(arms) - 1) / 2) * width
        spread = np.fmax(stds.loc[arm], stds.loc["no-kd"]) if relative else stds.loc[arm]
        ax.bar(
            x,
            (means.loc[arm] - base).to_numpy(),
            width,
            yerr=spread.to_numpy() if spread.notna().any() else None,
            capsize=3,
            label=f"{arm} ({_seeds(counts[arm])})",
        )
        for _, row in table[table["arm"] == arm].iterrows():
            ax.plot(x, (row[sets] - base).to_numpy(dtype=float), "k.", ms=3)
    if relative:
        ax.axhline(0, color="k", lw=1, label=f"student alone ({_seeds(counts['no-kd'])})")
        ax.set_xticks(np.arange(len(sets)), [f"{name}\nalone {base[name]:.3f}" for name in sets])
        ax.set(
            ylabel="mean Dice minus the student alone's",
            title="each arm against the student alone (mean Dice at 0.5; error bars: seed spread)",
        )
    else:
        values = table[sets].to_numpy(dtype=float)
        margin = max(0.02, 0.15 * (np.nanmax(values) - np.nanmin(values)))
        ax.set_xticks(np.arange(len(sets)), sets)
        ax.set(
            ylabel="mean Dice at 0.5",
            ylim=(np.nanmin(values) - margin, np.nanmax(values) + margin),
            title="mean Dice per arm (no student alone in this table; axis zoomed)",
        )
    ax.legend(fontsize=8, ncols=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_alpha_sweep(sweep):
    """Validation Dice against the weight alpha of the distillation terms, one line per arm, from
    :func:`kdas_utils.study.alpha_sweep` (one seed per point: no error bars); each arm's chosen alpha
    (the best validation Dice) is ringed."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for arm, rows in sweep.groupby("arm", sort=False):
        rows = rows.sort_values("alpha")
        (line,) = ax.plot(rows["alpha"], rows["validation"], "o-", label=arm)
        best = rows.loc[rows["validation"].idxmax()]  # the choice of study.choose_alpha
        ax.plot(best["alpha"], best["validation"], "o", ms=12, mfc="none", color=line.get_color())
    ax.plot([], [], "o", ms=12, mfc="none", color="grey", label="chosen")
    ax.set(
        xlabel="alpha (weight of the distillation terms)",
        ylabel="validation mean Dice at 0.5",
        title="alpha, chosen on the validation split",
        xscale="log",
    )
    ax.set_xticks(sorted(set(sweep["alpha"])), [f"{a:g}" for a in sorted(set(sweep["alpha"]))])
    ax.minorticks_off()  # only the alphas tried are labelled
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_teacher_strength(table, baseline: float | None = None):
    """The student's validation Dice against its teacher's, one line per arm, from
    :func:`kdas_utils.study.teacher_strength`; ``baseline`` (the student alone) as a dashed line."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for arm, rows in table.groupby("arm", sort=False):
        rows = rows.sort_values("teacher_validation")
        ax.plot(rows["teacher_validation"], rows["validation"], "o-", label=arm)
        for row in rows.itertuples():
            ax.annotate(
                "final" if row.teacher_epoch == "best" else f"epoch {row.teacher_epoch}",
                (row.teacher_validation, row.validation),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label="student alone (mean)")
    ax.set(xlabel="teacher's validation Dice", ylabel="student's validation Dice", title="teacher strength")
    ax.margins(x=0.15, y=0.15)  # room for the labels of the outer points
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
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


def plot_dice_curves(curves: dict[str, np.ndarray], title: str = "Dice against the threshold"):
    """Mean Dice against the binarisation threshold (0..255), one line per model or test set."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, curve in curves.items():
        ax.plot(np.arange(256), curve, label=f"{name} (mean {curve.mean():.3f}, max {curve.max():.3f})")
    ax.set(xlabel="threshold on the min-max normalised map (0-255)", ylabel="mean Dice", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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


def plot_efficiency(table, accuracy: dict[str, float], metric: str = "meanDice"):
    """Accuracy against latency, marker area proportional to the parameter count. Labels of
    models with nearly the same accuracy (the two students) go one below, one above."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    order = sorted(table.index, key=lambda model: accuracy[model])
    span = max(accuracy[m] for m in order) - min(accuracy[m] for m in order) or 1.0
    offset = {model: (8, -4) for model in order}
    for lower, upper in zip(order, order[1:]):
        if accuracy[upper] - accuracy[lower] < 0.15 * span:
            offset[lower], offset[upper] = (8, -14), (8, 4)
    for model, row in table.iterrows():
        ax.scatter(row["latency bs1 (ms)"], accuracy[model], s=40 * row["parameters (M)"], alpha=0.6)
        ax.annotate(
            f"{model}\n{row['parameters (M)']:.2f}M, {row['GFLOPs']:.1f} GFLOPs",
            (row["latency bs1 (ms)"], accuracy[model]),
            fontsize=7,
            xytext=offset[model],
            textcoords="offset points",
        )
    ax.set(
        xlabel=f"latency at batch 1, 352 px, {table.attrs.get('device', '')} (ms)",
        ylabel=f"{metric}, mean over the test sets",
        title="accuracy, size and speed",
    )
    ax.set_xlim(0, 1.6 * table["latency bs1 (ms)"].max())  # room for the labels right of the points
    ax.margins(y=0.3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- lessons: paths, the phantom twin


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


def plot_domain_drop(table, models: list[str] | None = None):
    """Seen against unseen mean Dice per model, from :func:`kdas_utils.evaluate.domain_table`: one line
    per model from its ``seen`` mean to its ``unseen`` mean, each with its 95% interval (bootstrap over
    frames), and the drop (seen minus unseen) in the model's legend entry, where close lines cannot
    hide it."""
    models = models or list(dict.fromkeys(table.index.get_level_values("model")))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, model in enumerate(models):
        rows = table.loc[model].loc[["seen", "unseen"]]
        x = np.array([0, 1]) + (i - (len(models) - 1) / 2) * 0.06
        errors = np.abs(rows[["low", "high"]].to_numpy().T - rows["mean"].to_numpy())
        (line,) = ax.plot(x, rows["mean"], "o-", label=f"{model}: drop {rows.loc['unseen', 'drop']:.3f}")
        ax.errorbar(x, rows["mean"], yerr=errors, fmt="none", ecolor=line.get_color(), capsize=3)
    frames = table.xs("seen", level="scope")["frames"].iloc[0], table.xs("unseen", level="scope")["frames"].iloc[0]
    ax.set_xticks([0, 1], [f"seen\n({frames[0]} frames)", f"unseen\n({frames[1]} frames)"])
    ax.set_xlim(-0.3, 1.3)
    ax.set(ylabel="mean Dice at 0.5", title="from seen to unseen domains (95% bootstrap intervals)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
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


def study_figures(tables: dict, curves: dict, profile_name: str) -> dict:
    """The study's figures from its tables that exist (:func:`kdas_utils.study.load_results`),
    ``{name: Figure}``: ``curves`` (``curves``: ``{label: per-epoch table}``, see
    :func:`kdas_utils.study.curves`), ``alpha``, ``teacher-strength`` (with the student alone as a
    dashed line) and ``unseen`` (seen to unseen, the runs with every mask)."""
    drawn = {}
    if curves:
        drawn["curves"] = plot_validation_curves(curves, title=f"{profile_name} profile: validation Dice per epoch")
    if "alpha" in tables:
        drawn["alpha"] = plot_alpha_sweep(tables["alpha"])
    if "unseen-arms" in tables:
        arms = tables["unseen-arms"]
        full = arms[arms.label_fraction == 1]
        seeds = full.groupby("model", sort=False)["seeds"].first()
        named = {m: f"{m} ({n} seed{'s' if n > 1 else ''})" if m != "teacher" else m for m, n in seeds.items()}
        drawn["unseen"] = plot_domain_drop(full.assign(model=full.model.map(named)).set_index(["model", "scope"]))
    if "teacher-strength" in tables:
        strength = tables["teacher-strength"]
        alone = (strength.validation - strength.gain).mean()  # gain is measured against the student alone
        drawn["teacher-strength"] = plot_teacher_strength(strength, baseline=alone)
    return drawn
