import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdas_utils.engine import TrainConfig, Trainer, int8_teacher
from kdas_utils.kdas import (
    AttentionKD,
    CovarianceGuidance,
    DistillationObjective,
    FeatureAttentionKD,
    KDASLoss,
    PolypOutput,
    SymmetricGuidance,
    activation_attention,
    channel_covariance,
    normalized_covariance,
    self_attention_map,
    symmetric,
)
from kdas_utils.kdas.sgm import covariance_distance
from kdas_utils.models import build_student, build_teacher


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return build_student(), build_teacher().eval()


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:40, 20:44] = 1
    return x, mask


def heads(p1, p2=None):
    """A PolypOutput with only the heads set (what the head losses read)."""
    return PolypOutput(p1=p1, p2=p1 if p2 is None else p2, stages=(), cim=None, cfm=None, sam=None)


def teacher_out(nets, x):
    with torch.no_grad():
        return nets[1](x)


def grads_of(loss, module):
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad for n, p in module.named_parameters()}


# ----------------------------------------------------------------- Attention-KD


def test_attention_map_is_softmax_of_row_products_times_p_over_tau():
    p = torch.randn(1, 1, 5, 4, dtype=torch.float64)
    m = p[0, 0].numpy()
    scores = m @ m.T / math.sqrt(4)
    weights = np.exp(scores - scores.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    np.testing.assert_allclose(self_attention_map(p, tau=2.0)[0, 0].numpy(), weights @ m / 2, rtol=1e-5)


def test_attention_map_equals_the_released_calls_and_ignores_autocast_and_layout():
    """The released code calls ``scaled_dot_product_attention(P, P, P) / tau``; ours writes it out in
    fp32 (a GPU found no fused kernel for these maps under bf16 autocast): the same numbers, also for a
    channels-last input inside bf16 autocast, where the map stays fp32."""
    torch.manual_seed(3)
    p = torch.randn(2, 1, 24, 24)
    released = F.scaled_dot_product_attention(p, p, p) / 2.0
    torch.testing.assert_close(self_attention_map(p, 2.0), released, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mapped = self_attention_map(p.contiguous(memory_format=torch.channels_last), 2.0)
    assert mapped.dtype == torch.float32
    torch.testing.assert_close(mapped, released, rtol=1e-5, atol=1e-6)


def test_paper_attention_kd_is_the_kl_between_pixel_distributions():
    torch.manual_seed(2)
    ps, pt = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)
    expected = 0.0
    for b in range(2):
        qs = torch.softmax(self_attention_map(ps[b : b + 1], 2.0).flatten(), 0).double().numpy()
        qt = torch.softmax(self_attention_map(pt[b : b + 1], 2.0).flatten(), 0).double().numpy()
        expected += (qt * np.log(qt / qs)).sum()
    expected = 2 * expected / 2  # two heads (P1 = P2 here), then the batch mean
    value = AttentionKD("paper", tau=2.0)(heads(ps), heads(pt)).item()
    assert value == pytest.approx(expected, rel=1e-5) and value > 0
    assert AttentionKD("paper")(heads(pt), heads(pt)).item() == pytest.approx(0.0, abs=1e-7)


def test_paper_attention_kd_reaches_every_student_parameter(nets, batch):
    student, _ = nets
    x, _ = batch
    loss = AttentionKD("paper")(student(x), teacher_out(nets, x))
    grads = grads_of(loss, student)
    missing = [n for n, g in grads.items() if g is None or g.abs().sum() == 0]
    assert not missing, f"no gradient reaches {missing[:5]}"


def test_released_attention_kd_gives_zero_gradient_and_nan_on_negative_targets(nets, batch):
    student, _ = nets
    x, _ = batch
    loss = AttentionKD("released")(student(x), teacher_out(nets, x))
    grads = grads_of(loss, student)
    assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in grads.values())
    # A trained teacher's logits are negative on the background, so A(P_t) has negative entries
    # and target * log(target) is NaN; an all-positive map gives a finite value.
    background = torch.full((2, 1, 8, 8), -4.0)
    background[:, :, 2:5, 2:5] = 4.0
    assert torch.isnan(AttentionKD("released")(heads(torch.randn(2, 1, 8, 8)), heads(background)))
    assert torch.isfinite(AttentionKD("released")(heads(torch.randn(2, 1, 8, 8)), heads(torch.rand(2, 1, 8, 8) + 0.5)))


def test_feature_attention_transfer(nets, batch):
    student, teacher = nets
    x, _ = batch
    f = torch.randn(2, 8, 4, 4)
    q = activation_attention(f)
    np.testing.assert_allclose(q.norm(dim=1).numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        q[0].numpy(), (f[0] ** 2).sum(0).flatten().numpy() / (f[0] ** 2).sum(0).norm().item(), rtol=1e-5
    )
    t_out = teacher_out(nets, x)
    assert FeatureAttentionKD()(t_out, t_out).item() == 0.0
    loss = FeatureAttentionKD()(student(x), t_out)
    grads = grads_of(loss, student)
    assert loss.item() > 0 and grads["backbone.stages_0.blocks.0.attn.q.weight"].abs().sum() > 0
    assert grads["head_p1.weight"] is None  # stages only: the heads are not involved


# ----------------------------------------------------------------- SGM


def test_symmetric_map_and_released_sgm():
    p = torch.randn(3, 1, 5, 5)
    sym = symmetric(p)
    assert torch.equal(sym, sym.transpose(1, 2)) and torch.allclose(sym[0], p[0, 0] + p[0, 0].T)
    q = torch.randn(3, 1, 5, 5, requires_grad=True)
    loss = SymmetricGuidance()(heads(q), heads(p))
    expected = ((q[:, 0] + q[:, 0].transpose(1, 2) - sym) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"square maps; got \(4, 6\)"):
        symmetric(torch.zeros(1, 1, 4, 6))


def test_channel_covariance_matches_torch_cov_and_is_symmetric():
    f = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    cov = channel_covariance(f)
    assert torch.allclose(cov[1].double(), torch.cov(f[1].flatten(1)).float().double(), atol=1e-5)
    assert torch.equal(cov, cov.transpose(1, 2))


@pytest.mark.parametrize("channels, side", [(512, 2), (256, 4), (32, 8), (16, 2)])
def test_covariance_distance_equals_the_distance_of_the_normalised_matrices(channels, side):
    """The N x N form (fewer positions than channels) and the C x C form give the distance of the normalised
    covariance matrices, value and gradient, to float32 rounding (both compute in float32, as the loss does
    under mixed precision), a constant feature included (its normalised covariance is 0)."""

    def reference(fs, ft):  # the matrices themselves, in float64
        def normalised(f):
            x = f.flatten(2) - f.flatten(2).mean(dim=2, keepdim=True)
            cov = x @ x.transpose(1, 2)
            return cov / cov.flatten(1).norm(dim=1).clamp(min=1e-30)[:, None, None]

        return (normalised(fs) - normalised(ft)).pow(2).sum(dim=(1, 2))

    torch.manual_seed(0)
    fs = torch.randn(3, channels, side, side, dtype=torch.float64, requires_grad=True)
    ft = torch.randn(3, channels, side, side, dtype=torch.float64)
    ft[1] = 7.0  # constant: Sigma = 0
    expected = reference(fs, ft)
    (expected_gradient,) = torch.autograd.grad(expected.sum(), fs)
    fast = covariance_distance(fs, ft)
    (gradient,) = torch.autograd.grad(fast.sum(), fs)
    torch.testing.assert_close(fast.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    assert (gradient - expected_gradient).abs().max() <= 1e-5 * expected_gradient.abs().max()
    assert fast[1].item() == pytest.approx(1.0, abs=1e-5)  # |Sigma_s / ||Sigma_s|| - 0|^2
    assert covariance_distance(fs, fs)[0].item() == pytest.approx(0.0, abs=1e-5)
    direct = (normalized_covariance(fs) - normalized_covariance(ft)).pow(2).sum(dim=(1, 2))
    torch.testing.assert_close(fast.double(), direct.double(), rtol=3e-5, atol=1e-6)


def test_covariance_guidance(nets, batch):
    student, teacher = nets
    x, _ = batch
    guidance = CovarianceGuidance()
    assert set(guidance.projections) == {"stage4"}  # 256 -> 512 channels; cfm and sam are 32 in both
    assert guidance.projections["stage4"].weight.shape == (512, 256, 1, 1)
    t_out = teacher_out(nets, x)
    decoder_only = CovarianceGuidance(features=("cfm", "sam"))
    assert decoder_only(t_out, t_out).item() == pytest.approx(0.0, abs=1e-10)
    s_out = student(x)
    scaled = PolypOutput(p1=s_out.p1, p2=s_out.p2, stages=s_out.stages, cim=s_out.cim, cfm=3 * s_out.cfm, sam=s_out.sam)
    assert decoder_only(scaled, t_out).item() == pytest.approx(
        decoder_only(s_out, t_out).item(), rel=1e-4
    )  # scale-free
    loss = guidance(s_out, t_out)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert guidance.projections["stage4"].weight.grad.abs().sum() > 0
    for part in (student.backbone.stages_3, student.cfm, student.sam):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    student.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="unknown feature"):
        CovarianceGuidance(features=("stage9",))


# ----------------------------------------------------------------- KDASLoss


@pytest.mark.parametrize("at", ["paper", "released", "feature", None])
@pytest.mark.parametrize("sgm", ["released", "covariance", None])
def test_kdas_loss_combines_its_terms(nets, batch, at, sgm):
    student, _ = nets
    x, mask = batch
    loss_fn = KDASLoss(alpha=0.3, tau=2.0, at=at, sgm=sgm)
    with torch.no_grad():
        parts = loss_fn(student(x), teacher_out(nets, x), mask)
    assert set(parts) == {"total", "seg", "at", "sgm", "kd"} and all(v.dim() == 0 for v in parts.values())
    w_at = 1.0 if at == "feature" else 4.0
    expected = 0.7 * parts["seg"] + 0.3 * (w_at * parts["at"] + parts["sgm"])
    if at == "released":
        assert torch.isnan(parts["total"]) and torch.isnan(parts["at"])
    else:
        assert parts["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    if at is None:
        assert parts["at"].item() == 0.0
    if sgm is None:
        assert parts["sgm"].item() == 0.0
    assert (len(list(loss_fn.parameters())) > 0) == (sgm == "covariance")


def test_the_default_loss_is_the_kdas_arm_with_the_released_weights():
    from kdas_utils.kdas import ALPHA, ARMS, TAU

    settings = KDASLoss().settings()
    assert {k: settings[k] for k in ("at", "sgm")} == ARMS["kdas"]
    assert (settings["alpha"], settings["tau"]) == (ALPHA, TAU) == (0.3, 2.0)
    assert "kd" not in settings  # recorded only when a logit-KD term is used
    assert KDASLoss(**ARMS["pixel"]).settings()["kd"] == "pixel"


def test_pixel_arm_is_pixel_kd_mixed_by_alpha(nets, batch):
    from kdas_utils.kdas import ARMS, pixel_kd

    student, _ = nets
    x, mask = batch
    loss_fn = KDASLoss(alpha=0.1, **ARMS["pixel"])
    with torch.no_grad():
        s_out, t_out = student(x), teacher_out(nets, x)
        parts = loss_fn(s_out, t_out, mask)
    kd = pixel_kd(s_out.p1, t_out.p1, TAU_) + pixel_kd(s_out.p2, t_out.p2, TAU_)
    assert parts["kd"].item() == pytest.approx(kd.item(), rel=1e-6) and parts["kd"].item() > 0
    assert parts["at"].item() == 0.0 and parts["sgm"].item() == 0.0
    assert parts["total"].item() == pytest.approx(0.9 * parts["seg"].item() + 0.1 * kd.item(), rel=1e-6)


TAU_ = 2.0


def test_kdas_loss_rejects_unknown_forms():
    with pytest.raises(ValueError, match="at='kl'"):
        KDASLoss(at="kl")
    with pytest.raises(ValueError, match="sgm='gram'"):
        KDASLoss(sgm="gram")
    with pytest.raises(ValueError, match="alpha=1.5"):
        KDASLoss(alpha=1.5)
    with pytest.raises(ValueError, match="kd='hinton'"):
        KDASLoss(kd="hinton")


@pytest.mark.parametrize("at, sgm", [("paper", "released"), ("feature", "covariance")])
def test_finite_under_mixed_precision(nets, batch, at, sgm):
    student, teacher = nets
    x, mask = batch
    loss_fn = KDASLoss(at=at, sgm=sgm)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            t_out = teacher(x)
        parts = loss_fn(student(x), t_out, mask)
    assert all(torch.isfinite(v) for v in parts.values())
    grads = grads_of(parts["total"], student)
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)


@pytest.mark.parametrize("teacher_int8", [False, True])
def test_a_bf16_distillation_step_computes_its_losses_in_fp32(nets, batch, teacher_int8):
    """Under the CPU's bf16 autocast (kdas_utils.engine.choose_precision) the networks run in bf16, the
    losses in fp32, and the int8 teacher (whose quantised layers take fp32 only) outside autocast."""
    student, teacher = nets
    x, mask = batch
    teacher = int8_teacher(teacher) if teacher_int8 else teacher
    objective = DistillationObjective(teacher, KDASLoss(at="paper", sgm="covariance"))
    seen = []
    hook = objective.teacher.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, out, parts = objective(student, x, mask)
    hook.remove()
    assert out.p1.dtype == torch.bfloat16 and seen[0].p1.dtype == (torch.float32 if teacher_int8 else torch.bfloat16)
    assert loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in parts.values())
    # the same outputs scored outside autocast: fp32 matrix products in the covariances, equal to rounding
    assert torch.isfinite(loss) and torch.allclose(parts["sgm"], objective.loss.sgm(out, seen[0]), rtol=1e-6)


# ----------------------------------------------------------------- the frozen teacher in training


def test_teacher_is_untouched_by_distillation_training(nets, small_synthetic, tmp_path):
    from kdas_utils.data import PolypDataset, eval_transforms, find_pairs, train_transforms

    student, teacher = build_student(), nets[1]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    objective = DistillationObjective(teacher, KDASLoss(at="paper", sgm="covariance"))
    assert not any(p is q for p in objective.parameters() for q in teacher.parameters())
    assert not any(k.startswith("teacher") for k in objective.state_dict())
    pairs = find_pairs(small_synthetic / "TrainDataset")
    trainer = Trainer(
        student,
        PolypDataset(pairs[:8], train_transforms(64)),
        PolypDataset(pairs[8:12], eval_transforms(64)),
        TrainConfig(epochs=1, batch_size=4, image_size=64, progress=False),
        tmp_path,
        objective=objective,
        device="cpu",
        name="student",
    )
    projection = objective.loss.sgm.projections["stage4"].weight.clone()
    result = trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # weights and BN statistics
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    assert not torch.equal(projection, objective.loss.sgm.projections["stage4"].weight)  # trained with the student
    assert {"train_seg", "train_at", "train_sgm"} <= set(result.history[0])


def test_released_form_trains_with_the_released_gradients(nets, batch):
    """The engine minimises the total without the NaN value of L_AT; the gradients are the
    released code's (the NaN-valued total gives the same, finite, gradients)."""
    student, teacher = nets
    x, mask = batch
    objective = DistillationObjective(teacher, KDASLoss(at="released", sgm="released"))
    loss, out, parts = objective(student, x, mask)
    assert torch.isfinite(loss) and torch.isnan(parts["at"])
    ours = torch.autograd.grad(loss, list(student.parameters()), allow_unused=True)
    raw = objective.loss(student(x), teacher(x), mask)["total"]  # what the released code back-propagates
    theirs = torch.autograd.grad(raw, list(student.parameters()), allow_unused=True)
    for a, b in zip(ours, theirs):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.isfinite(b).all() and torch.allclose(a, b, rtol=1e-5, atol=1e-8)


def test_stage_maps_come_from_features_before_the_layernorm():
    """After a PVTv2 stage's LayerNorm, ``sum_c F_c^2`` is the same everywhere to rounding; before
    it, the map varies across the frame: the maps the lessons show and the feature AT-KD use."""
    from kdas_utils.distill.maps import layer_map
    from kdas_utils.kdas import FeatureAttentionKD, activation_energy

    torch.manual_seed(0)
    student, teacher = build_student().eval(), build_teacher().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        s_out, t_out = student(x), teacher(x)

    def spread(q):  # (max - min) / mean over the frame, the largest of the batch
        return ((q.amax((1, 2)) - q.amin((1, 2))) / q.mean((1, 2))).max().item()

    for i in range(4):
        assert s_out.prenorm[i].shape == s_out.stages[i].shape
        assert spread(activation_energy(s_out.stages[i])) < 1e-5  # flat after the LayerNorm
        assert spread(activation_energy(s_out.prenorm[i])) > 1e-2  # structured before it
        shown = layer_map(t_out, f"stage{i + 1}", (64, 64))
        assert shown.shape == (2, 64, 64) and np.allclose(shown.mean((1, 2)), 1, atol=0.05)  # 1 = the frame's mean
    assert FeatureAttentionKD()(s_out, t_out).item() > 1e-6  # not the 1e-12 of the post-norm features


def test_polyp_contrast_is_inside_over_outside():
    from kdas_utils.distill.maps import polyp_contrast

    mask = np.zeros((2, 4, 4))
    mask[:, :2] = 1
    maps = np.ones((2, 4, 4))
    maps[0, :2] = 3.0  # three times stronger on the polyp
    assert polyp_contrast(maps, mask).tolist() == [3.0, 1.0]
    assert np.isnan(polyp_contrast(maps, np.zeros((2, 4, 4)))).all()  # no polyp: undefined
