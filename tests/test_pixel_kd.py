import numpy as np
import pytest
import torch

from kdas_utils.kdas import PolypOutput
from kdas_utils.kdas.baselines import KD_FORMS, ChannelWiseKD, PixelKD, channel_wise_kd, make_logit_kd, pixel_kd


def logits(*shape, seed=0, scale=3.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=dtype)


def heads(p1, p2):
    """A PolypOutput with random heads and dummy small tensors elsewhere."""
    dummy = torch.zeros(1, 1, 1, 1)
    return PolypOutput(p1=p1, p2=p2, stages=(dummy,) * 4, cim=dummy, cfm=dummy, sam=dummy)


def numpy_bernoulli_kl(zs, zt, tau):
    """``T^2`` times the mean Bernoulli KL(p_t || p_s), in float64 from the definition."""
    zs, zt = zs.double().numpy() / tau, zt.double().numpy() / tau
    ps, pt = 1 / (1 + np.exp(-zs)), 1 / (1 + np.exp(-zt))
    kl = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
    return tau**2 * kl.mean()


def numpy_channel_wise_kd(zs, zt, tau):
    """``T^2`` times the mean over (b, c) of KL(softmax_HW(z_t/T) || softmax_HW(z_s/T)), float64."""

    def softmax(z):
        z = z.double().numpy().reshape(z.shape[0], z.shape[1], -1) / tau
        e = np.exp(z - z.max(axis=2, keepdims=True))
        return e / e.sum(axis=2, keepdims=True)

    qs, qt = softmax(zs), softmax(zt)
    return tau**2 * (qt * np.log(qt / qs)).sum(axis=2).mean()


# ----------------------------------------------------------------- pixel-wise KD


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0, 4.0])
def test_pixel_kd_is_the_bernoulli_kl_times_tau_squared(tau):
    zs, zt = logits(2, 1, 8, 8, seed=1), logits(2, 1, 8, 8, seed=2)
    value = pixel_kd(zs, zt, tau).item()
    assert value == pytest.approx(numpy_bernoulli_kl(zs, zt, tau), rel=1e-6)


def test_pixel_kd_is_zero_for_the_teacher_itself_and_positive_otherwise():
    zt = logits(2, 1, 8, 8, seed=3)
    assert abs(pixel_kd(zt.clone(), zt, 2.0).item()) <= 1e-7
    assert pixel_kd(logits(2, 1, 8, 8, seed=4), zt, 2.0).item() > 0


@pytest.mark.parametrize("tau", [1.0, 2.0, 3.0])
def test_pixel_kd_is_two_class_softmax_kd_on_zero_and_z(tau):
    zs, zt = logits(2, 1, 6, 6, seed=5, dtype=torch.float64), logits(2, 1, 6, 6, seed=6, dtype=torch.float64)
    log_qs = torch.log_softmax(torch.cat([torch.zeros_like(zs), zs], dim=1) / tau, dim=1)  # (B, 2, H, W)
    log_qt = torch.log_softmax(torch.cat([torch.zeros_like(zt), zt], dim=1) / tau, dim=1)
    kl = (log_qt.exp() * (log_qt - log_qs)).sum(dim=1).mean()
    assert pixel_kd(zs, zt, tau).item() == pytest.approx(tau**2 * kl.item(), rel=1e-9)


def test_pixel_kd_is_stable_for_large_logits():
    zs, zt = logits(1, 1, 4, 4, seed=7, scale=200.0), logits(1, 1, 4, 4, seed=8, scale=200.0)
    value = pixel_kd(zs, zt, 1.0)
    assert torch.isfinite(value) and value.item() > 0


# ----------------------------------------------------------------- channel-wise KD


@pytest.mark.parametrize("tau", [1.0, 4.0])
@pytest.mark.parametrize("channels", [1, 3])
def test_channel_wise_kd_matches_numpy(tau, channels):
    zs, zt = logits(2, channels, 7, 5, seed=9), logits(2, channels, 7, 5, seed=10)
    value = channel_wise_kd(zs, zt, tau).item()
    assert value == pytest.approx(numpy_channel_wise_kd(zs, zt, tau), rel=1e-6) and value > 0
    assert abs(channel_wise_kd(zt.clone(), zt, tau).item()) <= 1e-7


def test_channel_wise_kd_ignores_a_constant_shift_but_pixel_kd_does_not():
    zs, zt = logits(2, 1, 6, 6, seed=11), logits(2, 1, 6, 6, seed=12)
    assert channel_wise_kd(zs + 5.0, zt, 4.0).item() == pytest.approx(channel_wise_kd(zs, zt, 4.0).item(), rel=1e-5)
    assert pixel_kd(zs + 5.0, zt, 2.0).item() != pytest.approx(pixel_kd(zs, zt, 2.0).item(), rel=1e-3)


# ----------------------------------------------------------------- gradients


@pytest.mark.parametrize("kd", [pixel_kd, channel_wise_kd])
def test_gradient_matches_finite_differences_and_skips_the_teacher(kd):
    zs = logits(2, 1, 3, 4, seed=13, dtype=torch.float64).requires_grad_()
    zt = logits(2, 1, 3, 4, seed=14, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: kd(s, zt, 2.0), (zs,))

    teacher = zt.clone().requires_grad_()
    kd(zs, teacher, 2.0).backward()
    assert teacher.grad is None or torch.all(teacher.grad == 0)
    assert zs.grad is not None and zs.grad.abs().sum() > 0


def test_pixel_kd_gradient_is_tau_times_the_probability_gap():
    """d/dz_s of T^2 KL = T (p_s - p_t) / N: the soft targets keep a gradient of order T, not 1/T."""
    zs, zt = (
        logits(1, 1, 4, 4, seed=15, dtype=torch.float64).requires_grad_(),
        logits(1, 1, 4, 4, seed=16, dtype=torch.float64),
    )
    tau = 3.0
    pixel_kd(zs, zt, tau).backward()
    expected = tau * (torch.sigmoid(zs.detach() / tau) - torch.sigmoid(zt / tau)) / zs.numel()
    torch.testing.assert_close(zs.grad, expected)


# ----------------------------------------------------------------- the modules


@pytest.mark.parametrize(
    "module, kd, tau",
    [(PixelKD(), pixel_kd, 2.0), (ChannelWiseKD(), channel_wise_kd, 4.0), (PixelKD(tau=1.5), pixel_kd, 1.5)],
)
def test_modules_sum_the_term_over_p1_and_p2(module, kd, tau):
    s1, s2 = logits(2, 1, 8, 8, seed=17), logits(2, 1, 8, 8, seed=18)
    t1, t2 = logits(2, 1, 8, 8, seed=19), logits(2, 1, 8, 8, seed=20)
    value = module(heads(s1, s2), heads(t1, t2))
    assert value.dim() == 0 and module.tau == tau
    assert value.item() == pytest.approx((kd(s1, t1, tau) + kd(s2, t2, tau)).item(), rel=1e-6)


def test_default_temperatures():
    assert PixelKD().tau == 2.0 and ChannelWiseKD().tau == 4.0


@pytest.mark.parametrize("kd", [pixel_kd, channel_wise_kd])
def test_shape_mismatch_names_both_shapes(kd):
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\).*\(2, 1, 4, 4\)"):
        kd(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 4, 4), 2.0)
    with pytest.raises(ValueError, match="tau"):
        kd(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), 0.0)


def test_module_shape_mismatch_raises():
    small, big = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\(1, 1, 8, 8\).*\(1, 1, 4, 4\)"):
        PixelKD()(heads(big, big), heads(small, small))


def test_make_logit_kd():
    assert KD_FORMS == ("pixel", "cwd", None)
    assert make_logit_kd(None, 2.0) is None
    pixel, cwd = make_logit_kd("pixel", 2.0), make_logit_kd("cwd", 3.0)
    assert isinstance(pixel, PixelKD) and pixel.tau == 2.0
    assert isinstance(cwd, ChannelWiseKD) and cwd.tau == 3.0
    with pytest.raises(ValueError, match="'pixel', 'cwd', None"):
        make_logit_kd("nope", 2)


def test_half_precision_logits_give_a_float32_loss():
    zs, zt = logits(1, 1, 4, 4, seed=21).half(), logits(1, 1, 4, 4, seed=22).half()
    assert pixel_kd(zs, zt, 2.0).dtype == torch.float32
    assert channel_wise_kd(zs, zt, 4.0).dtype == torch.float32
