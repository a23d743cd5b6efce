"""Figures the notebooks draw. Every function takes arrays or tables and returns a matplotlib
``Figure``: nothing here loads data or runs a network (the frames a figure shows come from
:func:`kdas_utils.runs.figure_samples`, predictions on them from
:func:`kdas_utils.evaluate.predict_samples`).

In two parts: :mod:`.images` (frames and maps) and :mod:`.curves` (numbers: curves and tables)."""

from .attention import attention_heat, attention_norm, render_overlay, show_attention_grid
from .curves import (
    plot_ablation,
    plot_alpha_sweep,
    plot_dice_curves,
    plot_domain_drop,
    plot_efficiency,
    plot_history,
    plot_predict_cpu,
    plot_runs,
    plot_teacher_strength,
    plot_validation_curves,
    study_figures,
)
from .images import (
    ERROR_COLOURS,
    POLYP_GREEN,
    metric_example_maps,
    overlay,
    phantom_twin_maps,
    plot_area_histograms,
    save_figure,
    show_augmentations,
    show_comparison,
    show_layers,
    show_matrices,
    show_metric_examples,
    show_overlays,
    show_pairs,
    show_phantom_twin,
    show_prediction,
    show_predictions,
    show_weight_map,
    shown_path,
)
from .objective import TERM_COLOURS, objective_terms, show_objective

__all__ = [
    "ERROR_COLOURS",
    "attention_heat",
    "attention_norm",
    "POLYP_GREEN",
    "metric_example_maps",
    "overlay",
    "phantom_twin_maps",
    "plot_ablation",
    "plot_alpha_sweep",
    "plot_area_histograms",
    "plot_dice_curves",
    "plot_domain_drop",
    "plot_efficiency",
    "plot_history",
    "plot_predict_cpu",
    "plot_runs",
    "plot_teacher_strength",
    "plot_validation_curves",
    "render_overlay",
    "save_figure",
    "show_attention_grid",
    "show_augmentations",
    "show_comparison",
    "show_layers",
    "show_matrices",
    "show_metric_examples",
    "show_overlays",
    "show_pairs",
    "show_phantom_twin",
    "show_prediction",
    "show_predictions",
    "show_weight_map",
    "shown_path",
    "study_figures",
    "TERM_COLOURS",
    "objective_terms",
    "show_objective",
]
