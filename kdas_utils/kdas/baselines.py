"""Logit distillation: the classic baselines KDAS is compared with.

Both forms compare the student's logits ``z_s`` with the teacher's ``z_t`` on the prediction
heads P1 and P2, each ``(B, 1, H, W)`` for a one-channel sigmoid output, and are selectable in
:class:`~kdas_utils.kdas.KDASLoss` with ``kd=``. Both already contain the factor ``T^2``
(Hinton et al.'s compensation for the ``1/T^2`` shrinking of soft gradients), so a caller adds
them without scaling.

``"pixel"``: pixel-wise KD (Liu et al., CVPR 2019, "Structured knowledge distillation for
semantic segmentation", the pixel-wise term; Hinton-style KD at every pixel). A sigmoid output
is a Bernoulli distribution per pixel. With ``p = sigmoid(z / T)``

    KL(p_t || p_s) = p_t log(p_t / p_s) + (1 - p_t) log((1 - p_t) / (1 - p_s))
                   = BCE(z_s / T, p_t) - H(p_t),      H(p) = -p log p - (1 - p) log(1 - p)

    L_pixel = T^2 * mean over (b, h, w) of KL(p_t || p_s)          a scalar

``BCE`` is :func:`torch.nn.functional.binary_cross_entropy_with_logits` (stable for any logit),
and ``H(p_t) = BCE(z_t / T, p_t)``, computed the same way. Since ``sigmoid(z) = softmax([0, z])_1``,
this is exactly the two-class softmax KD of Liu et al. on the channels ``[0, z]``. It is ``>= 0``
and exactly 0 when ``z_s == z_t``.

``"cwd"``: channel-wise distillation (Shu et al., ICCV 2021). Each channel ``c`` becomes a
distribution over its ``H W`` positions,

    q(z)_{b,c,i} = softmax_i(z_{b,c,i} / T)                        (B, C, H*W)

    L_cwd = T^2 / (B C) * sum_{b,c} KL(q(z_t)_{b,c} || q(z_s)_{b,c})    a scalar

so the student learns *where* in the frame the teacher puts its mass, not the mass at each
pixel. Shu et al. use ``T = 4`` in their official setting. Here ``C = 1``: a single distribution
over the pixels of the map, which is close to the paper's Attention-KD (``at="paper"`` in
:mod:`.attention`) without the self-attention ``A(P)`` applied before the softmax.

In both, the teacher is a fixed target: its logits are detached and receive no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import HEADS

KD_FORMS = ("pixel", "cwd", None)


def _floating(z: torch.Tensor) -> torch.Tensor:
    """``z`` in float32 at least (half-precision logits are upcast; float64 stays float64)."""
    return z.to(torch.promote_types(z.dtype, torch.float32))


def _check(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> None:
    """Raise ``ValueError`` unless the two maps have one shape and ``tau > 0``."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} logits differ in shape"
        )
    if not tau > 0:
        raise ValueError(f"tau={tau}: the temperature must be positive")


def pixel_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Pixel-wise KD: ``T^2`` times the mean over all pixels of ``KL(Bern(p_t) || Bern(p_s))``.

    Args:
        student_logits, teacher_logits: ``(B, 1, H, W)`` logits (any same shape works).
        tau: the temperature ``T``.

    Returns a scalar; the teacher gets no gradient.
    """
    _check(student_logits, teacher_logits, tau)
    zs = _floating(student_logits) / tau
    zt = _floating(teacher_logits).detach() / tau
    pt = torch.sigmoid(zt)
    cross_entropy = F.binary_cross_entropy_with_logits(zs, pt, reduction="none")  # -E_{p_t}[log p_s]
    entropy = F.binary_cross_entropy_with_logits(zt, pt, reduction="none")  # H(p_t)
    return tau**2 * (cross_entropy - entropy).mean()


def channel_wise_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Channel-wise KD: ``T^2`` times the mean over ``(b, c)`` of the KL between the teacher's
    and the student's softmax over the ``H W`` positions of ``z / T``.

    Args:
        student_logits, teacher_logits: ``(B, C, H, W)`` logits (``C = 1`` for the heads).
        tau: the temperature ``T`` (4 in Shu et al.'s official setting).

    Returns a scalar; the teacher gets no gradient.
    """
    _check(student_logits, teacher_logits, tau)
    log_qs = F.log_softmax(_floating(student_logits).flatten(2) / tau, dim=2)  # (B, C, H*W)
    log_qt = F.log_softmax(_floating(teacher_logits).detach().flatten(2) / tau, dim=2)  # (B, C, H*W)
    kl = F.kl_div(log_qs, log_qt, reduction="sum", log_target=True)  # summed over b, c and the positions
    batch, channels = log_qs.shape[:2]
    return tau**2 * kl / (batch * channels)


class _HeadsKD(nn.Module):
    """A logit-KD ``term(student_logits, teacher_logits, tau)`` summed over the heads P1 and P2.

    Call: ``(student_out, teacher_out)`` with ``.p1`` / ``.p2`` ``(B, 1, H, W)`` logits of the
    same size; returns a scalar that already contains ``T^2``.
    """

    term = staticmethod(pixel_kd)

    def __init__(self, tau: float):
        super().__init__()
        self.tau = tau

    def forward(self, student_out, teacher_out) -> torch.Tensor:
        return sum(self.term(getattr(student_out, h), getattr(teacher_out, h), self.tau) for h in HEADS)


class PixelKD(_HeadsKD):
    """:func:`pixel_kd` summed over the heads P1 and P2; ``tau`` 2, the KDAS temperature."""

    term = staticmethod(pixel_kd)

    def __init__(self, tau: float = 2.0):
        super().__init__(tau)


class ChannelWiseKD(_HeadsKD):
    """:func:`channel_wise_kd` summed over the heads P1 and P2; ``tau`` 4, Shu et al.'s official setting."""

    term = staticmethod(channel_wise_kd)

    def __init__(self, tau: float = 4.0):
        super().__init__(tau)


def make_logit_kd(form: str | None, tau: float) -> nn.Module | None:
    """The logit-KD module of ``form`` (one of :data:`KD_FORMS`) at temperature ``tau``;
    ``None`` for ``form=None``."""
    if form not in KD_FORMS:
        raise ValueError(f"kd form {form!r}: choose one of {KD_FORMS}")
    if form is None:
        return None
    return PixelKD(tau) if form == "pixel" else ChannelWiseKD(tau)
