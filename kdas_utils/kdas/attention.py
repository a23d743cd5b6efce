"""Attention-KD: the student learns where the teacher looks.

Three forms, selectable in :class:`~kdas_utils.kdas.KDASLoss` with ``at=``:

``"paper"`` (the method as the paper intends). A prediction map ``P`` ``(B, 1, H, W)`` is read
as ``H`` tokens (its rows) of ``W`` features, and its self-attention map is

    A(P) = softmax(P P^T / sqrt(W)) P / tau                       (B, 1, H, W)

computed for the teacher *and* the student (``scaled_dot_product_attention(P, P, P) / tau``).
Each map becomes a distribution over the ``H W`` pixels (a softmax over the flattened map),
and the loss is ``KL(teacher || student)`` per image, averaged over the batch, summed over the
heads P1 and P2. Its gradient reaches every trainable student parameter.

``"released"`` (faithful to the released code, kept to reproduce it). The student side is
``softmax(P_s)`` over the single channel divided by tau: the constant ``1/tau``. It is passed to
``KLDivLoss(reduction="mean")`` as log-probabilities against the teacher map ``A(P_t)`` as
target. So the student gets **zero gradient** from it, and since ``A(P_t)`` is negative
wherever the teacher's logits are, ``target * log(target)`` makes the value **NaN**.

``"feature"`` (a classic baseline): attention transfer on the four backbone stages
(Zagoruyko and Komodakis 2017), taken *before* each stage's final LayerNorm (after it,
``sum_c F_c^2`` is nearly constant over the frame and the loss about 1e-12: this series' choice,
as neither the paper nor the release uses this form). The spatial attention of a feature ``F`` ``(B, C, H, W)`` is
``Q = sum_c |F_c|^p`` flattened and L2-normalised; the loss is ``beta / 2`` times the sum over
stages of the mean squared difference between student and teacher ``Q``. Teacher and student
stages have the same strides, so the maps align without resizing.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("p1", "p2")


def self_attention_map(p: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """``(B, 1, H, W)`` map ``softmax(P P^T / sqrt(W)) P / tau`` of ``(B, 1, H, W)`` logits
    (rows as tokens; the released code's ``scaled_dot_product_attention(P, P, P) / tau``).

    Written out in fp32, autocast off, rather than through ``scaled_dot_product_attention``: the
    same formula (its math backend), but on a GPU that call picks a fused kernel by the input's dtype,
    strides and size, and on an H200 under bf16 autocast none of them took these ``(B, 1, 88, 88)``
    maps (``cutlassF: no kernel found to launch``, measured 2026-12-04). The product is
    ``(H, W) x (W, H)``, small next to the networks."""
    p = p.float()
    with torch.autocast(p.device.type, enabled=False):
        weights = torch.softmax(p @ p.transpose(-2, -1) / math.sqrt(p.shape[-1]), dim=-1)
        return weights @ p / tau


def pixel_distribution_log(a: torch.Tensor) -> torch.Tensor:
    """``(B, H*W)`` log-softmax over all pixels of a ``(B, 1, H, W)`` map."""
    return F.log_softmax(a.flatten(1), dim=1)


def activation_energy(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``(B, H, W)`` ``sum_c |F_c|^p`` of a ``(B, C, H, W)`` feature: where the feature is strong."""
    return feature.float().abs().pow(p).sum(dim=1)


def activation_attention(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Zagoruyko-Komodakis attention ``(B, H*W)``: :func:`activation_energy`, flattened, L2-normalised."""
    return F.normalize(activation_energy(feature, p).flatten(1), dim=1)


class AttentionKD(nn.Module):
    """``L_AT`` on the prediction heads P1 and P2 (see the module docstring for the forms).

    Args:
        form: ``"paper"`` or ``"released"``.
        tau: the temperature (2 in the released code).

    Call: ``(student_out, teacher_out)`` with ``.p1`` / ``.p2`` ``(B, 1, H, W)`` logits of the
    same size; returns a scalar. The caller scales it by ``tau**2`` (see :class:`KDASLoss`).
    """

    def __init__(self, form: str = "paper", tau: float = 2.0):
        super().__init__()
        if form not in ("paper", "released"):
            raise ValueError(f"form={form!r}: choose 'paper' or 'released' (or FeatureAttentionKD for 'feature')")
        self.form, self.tau = form, tau

    def head_loss(self, p_student: torch.Tensor, p_teacher: torch.Tensor) -> torch.Tensor:
        """The loss of one head."""
        if p_student.shape != p_teacher.shape:
            raise ValueError(
                f"student {tuple(p_student.shape)} and teacher {tuple(p_teacher.shape)} maps differ in shape"
            )
        target = self_attention_map(p_teacher, self.tau)
        if self.form == "released":
            # softmax over the singleton channel (the dim torch picks for 4-D input) is 1 everywhere
            constant = torch.softmax(p_student.float(), dim=1) / self.tau
            with (
                warnings.catch_warnings()
            ):  # torch warns that 'mean' also divides by H*W: that is the released behaviour
                warnings.simplefilter("ignore", UserWarning)
                return F.kl_div(constant, target, reduction="mean")
        log_student = pixel_distribution_log(self_attention_map(p_student, self.tau))
        log_teacher = pixel_distribution_log(target)
        return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)

    def forward(self, student_out, teacher_out) -> torch.Tensor:
        return sum(self.head_loss(getattr(student_out, h), getattr(teacher_out, h)) for h in HEADS)


class FeatureAttentionKD(nn.Module):
    """Attention transfer on the backbone stages: ``beta/2 * sum_s mean((Q_s^S - Q_s^T)^2)``.

    Args:
        p: the exponent of ``sum_c |F_c|^p`` (2 in the AT paper).
        beta: the AT paper's weight (1000).
    """

    def __init__(self, p: float = 2.0, beta: float = 1000.0):
        super().__init__()
        self.p, self.beta = p, beta

    def forward(self, student_out, teacher_out) -> torch.Tensor:
        total = 0.0
        for fs, ft in zip(student_out.prenorm, teacher_out.prenorm):
            if fs.shape[-2:] != ft.shape[-2:]:
                raise ValueError(f"stage sizes differ: student {tuple(fs.shape)}, teacher {tuple(ft.shape)}")
            total = total + (activation_attention(fs, self.p) - activation_attention(ft, self.p)).pow(2).mean()
        return self.beta / 2 * total
