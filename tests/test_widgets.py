import numpy as np
import pytest
import torch

from kdas_utils.data import PolypDataset, eval_transforms, find_pairs
from kdas_utils.distill.maps import head_attention, layer_map, stage_attention
from kdas_utils.models import build_student
from kdas_utils.widgets import AttentionExplorer, render_overlay


@pytest.fixture(scope="module")
def explorer(small_synthetic):
    torch.manual_seed(0)
    samples = [
        PolypDataset(find_pairs(small_synthetic / "TestDataset" / "Synthetic"), eval_transforms(64))[i] for i in (0, 1)
    ]
    confident = build_student()  # an untrained head is nearly flat; scale it up to give the map some contrast
    with torch.no_grad():
        confident.head_p1.weight *= 50
    return AttentionExplorer({"student": build_student(), "confident": confident}, samples)


def test_overlay_blends_image_and_colour_map():
    image = np.full((4, 5, 3), 100, np.uint8)
    heat = np.linspace(0, 1, 20).reshape(4, 5)
    assert np.array_equal(render_overlay(image, heat, opacity=0.0), image)
    full = render_overlay(image, heat, opacity=1.0, cmap="gray")
    assert full[0, 0].tolist() == [0, 0, 0] and full[-1, -1].tolist() == [255, 255, 255]
    half = render_overlay(image, heat, opacity=0.5, cmap="gray")
    assert half[-1, -1].tolist() == [178, 178, 178]  # (100 + 255) / 2, rounded
    with pytest.raises(ValueError, match="same height and width"):
        render_overlay(image, heat[:3])
    with pytest.raises(ValueError, match="opacity=2"):
        render_overlay(image, heat, opacity=2)


def test_stage_map_is_the_normalised_power_sum():
    feature = torch.zeros(1, 2, 2, 2)
    feature[0, 0, 0, 0], feature[0, 1, 1, 1] = 1.0, -2.0
    m = stage_attention(feature, (2, 2), p=2)  # energies 1 and 4 at two of four positions: mean 1.25
    assert m.shape == (1, 2, 2) and m[0, 1, 1] == pytest.approx(3.2) and m[0, 0, 0] == pytest.approx(0.8)
    assert m[0, 0, 1] == 0.0 and m.mean() == pytest.approx(1.0)  # 1 is the frame's average
    assert stage_attention(feature, (2, 2), p=1)[0, 0, 0] == pytest.approx(1 / 0.75)


def test_head_map_is_a_distribution_that_tau_sharpens():
    logits = torch.randn(2, 1, 8, 8) * 3
    sharp, flat = head_attention(logits, tau=0.5), head_attention(logits, tau=8.0)
    np.testing.assert_allclose(sharp.mean(axis=(1, 2)), 1.0, rtol=1e-5)  # times H*W: the mean is 1
    assert sharp.max() > flat.max() and sharp.std() > flat.std()
    with pytest.raises(ValueError, match="layer='stage5'"):
        layer_map(None, "stage5", (8, 8))


def test_explorer_draws_each_setting(explorer):
    base = explorer.render(0, "student", "stage4")
    assert base.shape == (64, 64, 3) and base.dtype == np.uint8
    assert not np.array_equal(base, explorer.render(1, "student", "stage4"))  # frame
    assert not np.array_equal(base, explorer.render(0, "confident", "stage4"))  # model
    assert not np.array_equal(base, explorer.render(0, "student", "stage1"))  # layer
    assert not np.array_equal(base, explorer.render(0, "student", "stage4", p=4.0))  # p
    assert not np.array_equal(base, explorer.render(0, "student", "stage4", opacity=0.9))
    head = explorer.render(0, "confident", "P1", tau=1.0)
    assert not np.array_equal(head, explorer.render(0, "confident", "P1", tau=4.0))  # tau


def test_widget_redraws_when_a_control_moves(explorer):
    import ipywidgets as w

    box = explorer.widget()
    controls = box.children[0].children
    picture = box.children[1].children[0]
    assert isinstance(picture, w.Image) and picture.value[:4] == b"\x89PNG"
    before = picture.value
    opacity = next(c for c in controls if c.description == "opacity")
    opacity.value = 0.95
    assert picture.value != before
    layer = next(c for c in controls if c.description == "map")
    assert list(layer.options) == ["stage1", "stage2", "stage3", "stage4", "P1", "P2"]
    caption = box.children[1].children[1]
    layer.value = "P1"
    top = explorer.scale(0, "P1")
    assert f"0.1 (blue) to {top:g} (red) x uniform, log scale" in caption.value


def test_nice_scale_is_the_next_of_1_2_5_at_or_above_the_largest_value():
    from kdas_utils.distill.maps import nice_scale

    assert [nice_scale(x) for x in (0.2, 1.0, 1.01, 3.0, 4.0, 5.0, 17.0, 20.0, 21.0, 160.0)] == [
        1,
        1,
        2,
        5,
        5,
        5,
        20,
        20,
        50,
        200,
    ]
    assert nice_scale(float("nan")) == 1.0


def test_the_grid_gives_stages_and_heads_a_colour_bar_each_that_clips_no_map(explorer):
    from kdas_utils.plots import show_attention_grid

    fig = show_attention_grid(explorer, frames=[0, 1])
    bars = {ax.get_xlabel(): ax.get_xlim()[1] for ax in fig.axes if ax.get_xlabel().startswith(("stages", "heads"))}
    assert set(bars) == {"stages: x the frame's mean energy", "heads: x uniform (log scale)"}
    for kind, top in bars.items():
        layers = ("P1", "P2") if kind.startswith("heads") else ("stage1", "stage2", "stage3", "stage4")
        largest = max(explorer.map(f, m, layer).max() for f in (0, 1) for m in explorer.models for layer in layers)
        assert largest <= top < 2.5 * largest or top == 1  # the bar reaches the data, not far beyond


def test_explorer_app_needs_a_trained_network(tmp_path, monkeypatch):
    from kdas_utils.config import get_profile
    from kdas_utils.widgets import explorer_app

    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    with pytest.raises(FileNotFoundError, match=r"kdas train-teacher --profile standard"):
        explorer_app(get_profile("standard"))


def test_the_bar_share_of_bars_stripes_and_noise():
    from kdas_utils.distill.maps import bar_share

    bars = np.tile(np.array([0.0, 1.0, 1.0, 0.0]), (4, 1))  # every row the same profile
    stripes = bars.T  # every column the same: rows differ, their means too
    noise = np.random.default_rng(0).normal(size=(64, 64))
    shares = bar_share(np.stack([bars, stripes, np.ones((4, 4))]))
    assert shares.tolist() == [1.0, 0.0, 0.0]
    assert 0 < bar_share(noise[None])[0] < 0.05
