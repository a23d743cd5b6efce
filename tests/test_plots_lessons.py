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


def test_the_teacher_strength_figure_names_each_arms_alpha_and_draws_the_seed_spread():
    import pandas as pd

    strength = pd.DataFrame(
        {
            "teacher_epoch": ["3", "best", "3", "best"],
            "teacher_validation": [0.5, 0.85, 0.5, 0.85],
            "alpha": [0.05, 0.05, 0.3, 0.3],
            "arm": ["kdas", "kdas", "pixel", "pixel"],
            "seed": [0, 0, 0, 0],
            "validation": [0.59, 0.62, 0.60, 0.61],
            "gain": [-0.01, 0.02, 0.0, 0.01],
        }
    )
    seeds = pd.DataFrame({"arm": ["no-kd"] * 3, "validation": [0.59, 0.60, 0.61]})
    fig = plots.study_figures({"teacher-strength": strength, "seeds": seeds}, {}, "standard")["teacher-strength"]
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels[:2] == ["kdas (alpha 0.05; 1 seed per point)", "pixel (alpha 0.3; 1 seed per point)"]
    assert labels[-1] == "+- its seed std (3 seeds)"
    band = [p for p in ax.patches if p.get_label().startswith("+-")][0]
    low, high = band.get_path().transformed(band.get_patch_transform()).get_extents().get_points()[:, 1]
    assert (low, high) == pytest.approx((0.60 - 0.01, 0.60 + 0.01))  # the alone's mean 0.60, std 0.01


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
    # the drop and its share of the seen Dice (the floor effect: a weak model has little to lose)
    assert labels == ["student alone: drop 0.316 (55% of seen)", "kdas (alpha 0.05): drop 0.327 (55% of seen)"]
    assert fig.axes[0].get_ylim()[0] == 0
    assert [tick.get_text() for tick in fig.axes[0].get_xticklabels()] == ["seen\n(161 frames)", "unseen\n(39 frames)"]
    matplotlib.pyplot.close(fig)


def test_the_lessons_figures_are_saved_in_one_naming_style(tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path))
    fig = matplotlib.pyplot.figure()
    names = ("07_teacher-strength_standard", "06_unseen_Synthetic-Shift", "02_weight_map")
    saved = [plots.save_figure(fig, name) for name in names]
    assert [path.name for path in saved] == [
        "07_teacher_strength_standard.png",
        "06_unseen_synthetic_shift.png",
        "02_weight_map.png",
    ]
    assert {path.parent for path in saved} == {tmp_path / "figures"}
    # beside a table, a figure keeps the table's name
    assert plots.save_figure(fig, "ablation-standard", folder=tmp_path).name == "ablation-standard.png"
    matplotlib.pyplot.close(fig)


def test_the_predictions_colour_bar_leaves_every_column_the_same_width():
    rng = np.random.default_rng(0)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    samples = [
        {
            "image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            "mask": mask,
            "name": f"f{i}",
            "dice": 0.5,
            "probability": rng.random((32, 32)),
        }
        for i in range(3)
    ]
    fig = plots.show_predictions(samples)
    fig.canvas.draw()
    widths = {round(ax.get_position().width, 4) for ax in fig.axes if ax.images}
    assert len(widths) == 1 and len(fig.axes) == 3 * 3 + 1  # nine panels and the bar
    matplotlib.pyplot.close(fig)


def test_the_objective_figure_follows_the_loss_it_is_given():
    from kdas_utils.kdas import KDASLoss

    kdas = plots.objective_terms(KDASLoss(alpha=0.1).settings())
    assert list(kdas) == ["seg", "at", "sgm"]
    assert kdas["sgm"]["tensors"] == ["stage4", "cfm", "sam"] and kdas["at"]["tensors"] == ["p1", "p2"]
    assert kdas["seg"]["mask"] and not kdas["seg"]["teacher"] and kdas["at"]["teacher"]
    assert kdas["at"]["label"].endswith("= 0.4") and kdas["seg"]["label"].endswith("= 0.9")  # alpha tau^2, 1 - alpha
    released = plots.objective_terms(KDASLoss(at="released", sgm="released").settings())
    assert released["sgm"]["tensors"] == ["p1"] and "zero gradient" in released["at"]["formula"]
    assert list(plots.objective_terms(KDASLoss(at=None, sgm=None, kd="pixel").settings())) == ["seg", "kd"]
    fig = plots.show_objective(KDASLoss(alpha=0.1), highlight="sgm")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("L_SGM\n") for t in texts) and any(t.startswith("mask G") for t in texts)
    with pytest.raises(ValueError, match="this loss has the terms"):
        plots.show_objective(KDASLoss(sgm=None), highlight="sgm")
    matplotlib.pyplot.close("all")
