"""Attention maps drawn over frames: the colour scales of the two quantities (a stage's energy, a head's
distribution), the overlay, and the grid of notebook 03 (also what :class:`kdas_utils.widgets.AttentionExplorer`
draws with)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize

from ..distill.maps import is_head, nice_scale
from .images import overlay


def render_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """``(H, W, 3) uint8``: ``(1 - opacity) * image + opacity * cmap(heat)``, ``heat`` in [0, 1]."""
    if image.shape[:2] != heat.shape:
        raise ValueError(f"image {image.shape[:2]} and heat map {heat.shape} must have the same height and width")
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity={opacity}: must lie in [0, 1]")
    colours = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3] * 255
    return np.round((1 - opacity) * image.astype(np.float64) + opacity * colours).astype(np.uint8)


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
    maps = {(f, m, layer): explorer.map(f, m, layer, p, tau) for f, m in rows for layer in layers}
    kinds = {kind: [layer for layer in layers if is_head(layer) == (kind == "heads")] for kind in ("stages", "heads")}
    tops = {  # the top of each quantity's colour bar: above every map drawn
        kind: nice_scale(max(float(maps[f, m, layer].max()) for f, m in rows for layer in chosen))
        for kind, chosen in kinds.items()
        if chosen
    }
    fig, axes = plt.subplots(
        len(rows), len(layers) + 1, figsize=((len(layers) + 1) * size, len(rows) * size + 0.9), squeeze=False
    )
    for r, (frame, model) in enumerate(rows):
        mask = explorer.samples[frame]["mask"][0].numpy().astype(np.uint8)
        axes[r, 0].imshow(overlay(explorer.frames[frame], mask))
        axes[r, 0].set_ylabel(model, fontsize=9)
        for c, layer in enumerate(layers, start=1):
            heat = attention_heat(layer, maps[frame, model, layer], tops["heads" if is_head(layer) else "stages"])
            axes[r, c].imshow(render_overlay(explorer.frames[frame], heat, opacity))
            if r == 0:
                axes[r, c].set_title(layer, fontsize=9)
        axes[r, 0].set_title(f"{model}: {explorer.samples[frame]['name'][:14]}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0, 0.9 / (len(rows) * size + 0.9), 1, 1))
    # one horizontal colour bar per quantity, under the columns it colours
    labels = {"stages": "stages: x the frame's mean energy", "heads": "heads: x uniform (log scale)"}
    for kind, top in tops.items():
        norm = attention_norm(kinds[kind][0], top)
        columns = [axes[-1, layers.index(layer) + 1] for layer in kinds[kind]]
        left, right = columns[0].get_position().x0, columns[-1].get_position().x1
        bar = fig.colorbar(
            ScalarMappable(norm, "jet"),
            cax=fig.add_axes((left, 0.25 / (len(rows) * size + 0.9), right - left, 0.012)),
            orientation="horizontal",
        )
        bar.set_label(labels[kind], fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return fig


def attention_norm(layer: str, top: float):
    """The colour scale of an attention map of ``layer`` up to ``top``: linear from 0 for a stage's energy
    (1 = the frame's mean), logarithmic from 0.1 for a head's distribution (1 = uniform), whose values span
    orders of magnitude (a head that puts its weight on a small polyp reaches 50 to 100 x uniform)."""
    return LogNorm(0.1, max(top, 1.0)) if is_head(layer) else Normalize(0, top)


def attention_heat(layer: str, values: np.ndarray, top: float) -> np.ndarray:
    """``(H, W)`` in [0, 1]: an attention map of ``layer`` on its colour scale (:func:`attention_norm`),
    clipped at both ends; what :func:`render_overlay` colours."""
    scaled = attention_norm(layer, top)(np.clip(values, 1e-6, None))
    return np.clip(np.ma.filled(scaled, 0.0), 0, 1)
