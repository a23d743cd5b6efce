"""The KDAS objective and the frozen-teacher wrapper the training engine calls.

    L_KDAS = (1 - alpha) [L_st(P1_s, G) + L_st(P2_s, G)] + alpha [w_AT L_AT + L_SGM]

with ``alpha = 0.3``, ``tau = 2`` and ``w_AT = tau^2`` for the KL forms of Attention-KD (as the
released code; the feature form carries its own weight ``beta``, so ``w_AT = 1`` there).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import deep_supervision_loss
from ..models.polyp_pvt import PolypOutput
from .attention import AttentionKD, FeatureAttentionKD
from .sgm import CovarianceGuidance, SymmetricGuidance

AT_FORMS = ("paper", "released", "feature", None)
SGM_FORMS = ("released", "covariance", None)


class KDASLoss(nn.Module):
    """KDAS's distillation loss.

    Args:
        alpha: weight of the distillation terms (0.3).
        tau: Attention-KD temperature (2).
        at: ``"paper"``, ``"released"``, ``"feature"`` or ``None`` (see :mod:`.attention`).
        sgm: ``"released"``, ``"covariance"`` or ``None`` (see :mod:`.sgm`).
        seg_variant: the structure loss's ``"paper"`` (weighted BCE) or ``"released"`` form.
        covariance_features: the features of the covariance SGM.

    Call: ``loss_fn(student_out, teacher_out, mask)`` with two
    :class:`~kdas_utils.models.PolypOutput` and a ``(B, 1, H, W)`` float mask; returns a dict
    of scalar tensors ``total``, ``seg``, ``at``, ``sgm`` (a disabled term is 0). With
    ``sgm="covariance"`` the module holds learned projections: give its parameters to the
    student's optimiser (the engine does, for a :class:`DistillationObjective`).
    """

    def __init__(self, alpha: float = 0.3, tau: float = 2.0, at: str | None = "paper", sgm: str | None = "released",
                 seg_variant: str = "paper", covariance_features=("stage4", "cfm", "sam")):
        super().__init__()
        if at not in AT_FORMS:
            raise ValueError(f"at={at!r}: choose one of {AT_FORMS}")
        if sgm not in SGM_FORMS:
            raise ValueError(f"sgm={sgm!r}: choose one of {SGM_FORMS}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha={alpha}: must lie in [0, 1]")
        self.alpha, self.tau, self.at_form, self.sgm_form, self.seg_variant = alpha, tau, at, sgm, seg_variant
        self.covariance_features = tuple(covariance_features)
        self.at = None if at is None else FeatureAttentionKD() if at == "feature" else AttentionKD(at, tau)
        self.sgm = None if sgm is None else SymmetricGuidance() if sgm == "released" \
            else CovarianceGuidance(covariance_features)

    def settings(self) -> dict:
        """The terms and weights as plain values (recorded in training checkpoints)."""
        return {"alpha": self.alpha, "tau": self.tau, "at": self.at_form, "sgm": self.sgm_form,
                "seg_variant": self.seg_variant,
                "covariance_features": list(self.covariance_features) if self.sgm_form == "covariance" else None}

    @property
    def at_weight(self) -> float:
        """``tau^2`` for the KL forms of Attention-KD, 1 for the feature form."""
        return 1.0 if self.at_form == "feature" else self.tau ** 2

    def combine(self, seg: torch.Tensor, at: torch.Tensor, sgm: torch.Tensor) -> torch.Tensor:
        """``(1 - alpha) seg + alpha (w_AT at + sgm)``."""
        return (1 - self.alpha) * seg + self.alpha * (self.at_weight * at + sgm)

    def forward(self, student_out, teacher_out, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = deep_supervision_loss(student_out, mask, self.seg_variant)
        zero = seg.new_zeros(())
        at = self.at(student_out, teacher_out) if self.at is not None else zero
        sgm = self.sgm(student_out, teacher_out) if self.sgm is not None else zero
        return {"total": self.combine(seg, at, sgm), "seg": seg, "at": at, "sgm": sgm}


def clone_output(out: PolypOutput) -> PolypOutput:
    """Clones of a teacher output made under ``torch.inference_mode()``: inference tensors
    cannot be saved for the student's backward pass, ordinary constants can."""
    return PolypOutput(p1=out.p1.clone(), p2=out.p2.clone(), stages=tuple(s.clone() for s in out.stages),
                       cim=out.cim.clone(), cfm=out.cfm.clone(), sam=out.sam.clone())


class DistillationObjective(nn.Module):
    """The engine's objective for the student: a frozen teacher and a :class:`KDASLoss`.

    The teacher is put in ``eval()`` mode with ``requires_grad=False`` and runs under
    ``torch.inference_mode()``: no graph is built through it and nothing flows back into it
    (the released code builds that graph and back-propagates NaN into the teacher). It is not
    a registered sub-module, so it is neither trained nor written into the student's
    checkpoints; ``.to(device)`` moves it along.

    Call: ``objective(student, images, masks) -> (loss, student_out, parts)`` as the engine expects.

    With ``at="released"`` the value of ``L_AT`` is NaN (see :mod:`.attention`) while its
    gradient to the student is exactly zero. The engine stops on a non-finite loss, so the loss
    it minimises here leaves that NaN *value* out (``nan_to_num``); the gradients are those of the
    released code (``tests/test_distill.py`` checks they are equal), and ``parts["at"]`` still
    reports the NaN.
    """

    def __init__(self, teacher: nn.Module, loss: KDASLoss):
        super().__init__()
        teacher.eval().requires_grad_(False)
        self.__dict__["teacher"] = teacher  # not a sub-module: no parameters, no state_dict entries
        self.loss = loss

    def _apply(self, fn, *args, **kwargs):
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # always
        return self

    def settings(self) -> dict:
        """``{"objective": "kdas", **loss.settings()}`` (see :func:`kdas_utils.engine.objective_settings`)."""
        return {"objective": "kdas", **self.loss.settings()}

    def compile_teacher(self) -> None:
        """Run the teacher's forward through ``torch.compile`` (the engine's ``compile=True``)."""
        self.__dict__["teacher"] = torch.compile(self.teacher)

    def forward(self, student: nn.Module, images: torch.Tensor, masks: torch.Tensor):
        with torch.inference_mode():
            teacher_out = self.teacher(images)
        teacher_out = clone_output(teacher_out)
        student_out = student(images)
        parts = self.loss(student_out, teacher_out, masks)
        loss = parts["total"]
        if self.loss.at_form == "released":
            loss = self.loss.combine(parts["seg"], torch.nan_to_num(parts["at"], nan=0.0), parts["sgm"])
        return loss, student_out, {k: v.detach() for k, v in parts.items()}
