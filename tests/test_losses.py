"""The structure loss against a direct NumPy computation."""

import numpy as np
import pytest
import torch

from kdas_utils.kdas.losses import boundary_weights, deep_supervision_loss, structure_loss


def _avgpool31(g):
    """31x31 mean with zero padding, divisor always 961 (count_include_pad)."""
    padded = np.pad(g, 15)
    out = np.zeros_like(g)
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            out[i, j] = padded[i : i + 31, j : j + 31].sum() / 961
    return out


def _reference(logits, masks, weighted):
    bce_all = np.maximum(logits, 0) - logits * masks + np.log1p(np.exp(-np.abs(logits)))
    losses = []
    for x, g, bce in zip(logits[:, 0], masks[:, 0], bce_all[:, 0]):
        w = 1 + 5 * np.abs(_avgpool31(g) - g)
        wbce = (w * bce).sum() / w.sum() if weighted else bce_all.mean()
        p = 1 / (1 + np.exp(-x))
        inter = (p * g * w).sum()
        union = ((p + g) * w).sum()
        losses.append(wbce + 1 - (inter + 1) / (union - inter + 1))
    return np.mean(losses)


@pytest.fixture
def example():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 1, 36, 40))
    masks = np.zeros((3, 1, 36, 40))
    masks[0, 0, 5:20, 8:30] = 1
    masks[1, 0, 20:34, 2:12] = 1
    masks[2, 0, 10:14, 10:14] = 0.5  # soft values, as after bilinear resizing
    return logits, masks


@pytest.mark.parametrize("variant, weighted", [("paper", True), ("released", False)])
def test_matches_numpy(example, variant, weighted):
    logits, masks = example
    ours = structure_loss(torch.tensor(logits), torch.tensor(masks), variant).item()
    assert ours == pytest.approx(_reference(logits, masks, weighted), rel=1e-5)


def test_weights_are_five_times_larger_at_edges(example):
    _, masks = example
    w = boundary_weights(torch.tensor(masks)).numpy()
    assert np.allclose(w[0, 0], 1 + 5 * np.abs(_avgpool31(masks[0, 0]) - masks[0, 0]))
    assert w.min() >= 1 and w[0, 0, 5, 8] > 3 and w[1, 0, 0, 39] == 1  # corner 20+ px from image 1's polyp


def test_variants_differ(example):
    logits, masks = example
    a = structure_loss(torch.tensor(logits), torch.tensor(masks), "paper")
    b = structure_loss(torch.tensor(logits), torch.tensor(masks), "released")
    assert abs(a - b) > 1e-3


def test_perfect_prediction_is_near_zero():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    assert structure_loss((mask * 2 - 1) * 30, mask) < 1e-3
    assert structure_loss(-(mask * 2 - 1) * 30, mask) > 10


def test_deep_supervision_sums_both_heads(example):
    from types import SimpleNamespace

    logits, masks = map(torch.tensor, example)
    out = SimpleNamespace(p1=logits, p2=logits * 0.5)
    assert torch.allclose(
        deep_supervision_loss(out, masks), structure_loss(logits, masks) + structure_loss(logits * 0.5, masks)
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant='weighted'"):
        structure_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), "weighted")
    with pytest.raises(ValueError, match=r"logits \(1, 1, 4, 4\) and mask \(1, 1, 8, 8\)"):
        structure_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8))


def test_the_separable_boundary_mean_equals_the_31_by_31_pool():
    import torch.nn.functional as F

    masks = (torch.rand(3, 1, 70, 90, generator=torch.Generator().manual_seed(0)) > 0.6).float()
    reference = 1 + 5 * torch.abs(F.avg_pool2d(masks, kernel_size=31, stride=1, padding=15) - masks)
    assert torch.allclose(boundary_weights(masks), reference, atol=1e-6)


def test_the_two_terms_add_up_and_only_the_bce_depends_on_the_variant():
    from kdas_utils.kdas import structure_terms

    g = torch.Generator().manual_seed(3)
    logits, mask = torch.randn(3, 1, 32, 32, generator=g), (torch.rand(3, 1, 32, 32, generator=g) > 0.7).float()
    wbce, wiou = structure_terms(logits, mask)
    assert wbce.shape == wiou.shape == (3, 1)
    assert torch.allclose((wbce + wiou).mean(), structure_loss(logits, mask), atol=1e-6)
    released_bce, released_iou = structure_terms(logits, mask, "released")
    assert torch.equal(released_iou, wiou) and not torch.allclose(released_bce, wbce)
