"""The small figure helpers of the lessons: printed paths and the phantom twin of P + P^T."""

import matplotlib

matplotlib.use("agg")

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from kdas_utils import plots
from kdas_utils.kdas import symmetric


def test_shown_path_is_relative_inside_the_project_and_anonymous_outside(tmp_path):
    root = tmp_path / "project"
    (root / "runs" / "checkpoints").mkdir(parents=True)
    assert plots.shown_path(root / "runs" / "checkpoints", root) == "runs/checkpoints"
    assert plots.shown_path(root, root) == "."
    outside = tmp_path / "elsewhere" / "polyp256"
    assert plots.shown_path(outside, root) == "<outside the project folder>/elsewhere/polyp256"
    assert str(tmp_path) not in plots.shown_path(outside, root)


def blobs(matrix: np.ndarray, level: float) -> list[tuple[float, float]]:
    """Centres (row, column) of the connected regions above ``level``."""
    labels, count = ndimage.label(matrix > level)
    return [tuple(round(v, 1) for v in c) for c in ndimage.center_of_mass(matrix > level, labels, range(1, count + 1))]


def test_an_off_diagonal_polyp_gets_a_phantom_twin():
    maps = plots.phantom_twin_maps(size=32, centre=(8, 22), radius=4, polyp=4.0, background=-4.0)
    p, pt, sym = maps["P"], maps["P.T"], maps["P + P.T"]
    np.testing.assert_array_equal(pt, p.T)
    np.testing.assert_array_equal(sym, p + p.T)
    np.testing.assert_array_equal(sym, sym.T)
    assert blobs(p, 0.0) == [(8.0, 22.0)]
    # In P + P^T the background is 2 x (-4) = -8; the polyp and its mirror are both 4 - 4 = 0.
    assert sorted(blobs(sym, -8.0)) == [(8.0, 22.0), (22.0, 8.0)]
    assert sym[8, 22] == sym[22, 8] == 0.0 and sym[0, 31] == -8.0
    # The released SGM cannot tell the polyp from its twin: a student that predicts the mirror scores 0.
    teacher = torch.from_numpy(p)[None]
    assert F.mse_loss(symmetric(teacher), symmetric(teacher.transpose(1, 2))).item() == 0.0
    assert F.mse_loss(teacher, teacher.transpose(1, 2)).item() > 0.0


def test_a_polyp_on_the_diagonal_has_no_twin():
    maps = plots.phantom_twin_maps(size=32, centre=(16, 16), radius=5)
    assert blobs(maps["P + P.T"], -8.0) == [(16.0, 16.0)]
    np.testing.assert_array_equal(maps["P + P.T"], 2 * maps["P"])


@pytest.mark.parametrize("maps", [None, plots.phantom_twin_maps(size=20, centre=(4, 14), radius=3)])
def test_show_phantom_twin_draws_three_panels_on_one_scale(maps):
    fig = plots.show_phantom_twin(maps)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert len({im.get_clim() for im in images}) == 1
    assert all(ax.lines for ax in fig.axes if ax.images)  # the diagonal, the mirror line
    matplotlib.pyplot.close(fig)


def test_study_figures_draw_the_data_they_are_given():
    import pandas as pd

    curves = {
        "teacher": pd.DataFrame({"epoch": [1, 2, 3], "val_dice": [0.2, 0.5, 0.6]}),
        "student": [{"epoch": 1, "val_dice": 0.3}],
    }
    ax = plots.plot_validation_curves(curves).axes[0]
    assert [line.get_label() for line in ax.lines] == ["teacher", "student"]
    assert list(ax.lines[0].get_ydata()) == [0.2, 0.5, 0.6] and ax.get_ylim() == (0, 1)
    sweep = pd.DataFrame({"arm": ["kdas"] * 3, "alpha": [0.05, 0.1, 0.3], "validation": [0.60, 0.64, 0.62]})
    ax = plots.plot_alpha_sweep(sweep).axes[0]
    ring = [line for line in ax.lines if line.get_markerfacecolor() == "none" and len(line.get_xdata()) == 1]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in ring] == [(0.1, 0.64)]  # the chosen alpha
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.05", "0.1", "0.3"]


def test_the_ablation_figure_draws_each_arm_against_the_student_alone():
    import pandas as pd

    table = pd.DataFrame(
        {
            "arm": ["no-kd", "no-kd", "kdas", "kdas", "pixel"],
            "seed": [0, 1, 0, 1, 0],
            "validation": [0.60, 0.62, 0.63, 0.63, 0.605],
            "Kvasir": [0.50, 0.50, 0.52, 0.56, 0.49],
        }
    )
    fig = plots.plot_ablation(table, sets=["validation", "Kvasir"])
    ax = fig.axes[0]
    heights = [round(bar.get_height(), 6) for bar in ax.patches]
    # kdas: 0.63 - 0.61, 0.54 - 0.50; pixel: 0.605 - 0.61, 0.49 - 0.50 (the student alone is the zero line)
    assert heights == [0.02, 0.04, -0.005, -0.01]
    spreads = [np.ptp(seg[:, 1]) / 2 for lines in ax.collections for seg in lines.get_segments()]
    # kdas: max(std 0, std 0.0141) on validation, max(0.0283, 0) on Kvasir; pixel (one seed) against no-kd's
    assert np.allclose(sorted(spreads), sorted([0.02**0.5 / 10, 0.0008**0.5, 0.02**0.5 / 10, 0.0]), atol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["validation\nalone 0.610", "Kvasir\nalone 0.500"]
    assert "against the student alone" in ax.get_title()
    without = plots.plot_ablation(table[table.arm != "no-kd"], sets=["validation"]).axes[0]
    assert without.get_ylim()[0] > 0.5 and "no student alone" in without.get_title()  # zoomed, said so


def test_the_domain_drop_names_each_models_drop_in_its_legend():
    rows = []
    for model, seen, unseen in (("student alone", 0.577, 0.261), ("kdas (alpha 0.05)", 0.591, 0.264)):
        rows += [
            {"model": model, "scope": "seen", "mean": seen, "low": seen - 0.04, "high": seen + 0.04, "frames": 161},
            {
                "model": model,
                "scope": "unseen",
                "mean": unseen,
                "low": unseen - 0.07,
                "high": unseen + 0.07,
                "frames": 39,
                "drop": seen - unseen,
            },
        ]
    fig = plots.plot_domain_drop(pd.DataFrame(rows).set_index(["model", "scope"]))
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["student alone: drop 0.316", "kdas (alpha 0.05): drop 0.327"]
    assert [tick.get_text() for tick in fig.axes[0].get_xticklabels()] == ["seen\n(161 frames)", "unseen\n(39 frames)"]
    matplotlib.pyplot.close(fig)
