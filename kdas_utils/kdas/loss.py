"""The KDAS loss, and the one place where the method's settings are written down.

    L_KDAS = (1 - alpha) [L_st(P1_s, G) + L_st(P2_s, G)] + alpha [w_AT L_AT + L_SGM + L_KD]

Where each setting comes from:

==============  ===========================  ==================================================
setting         value                        source
==============  ===========================  ==================================================
``alpha``       0.3 (:data:`ALPHA`)           the released code (``train_kd_paper.py``)
``tau``         2 (:data:`TAU`)               the released code
``w_AT``        ``tau^2`` (KL forms), 1       the released code multiplies its KL by ``tau^2``;
                (feature form)                the feature form carries its own ``beta``
``at``          ``"paper"`` (default)         the series' reading of the paper's Attention-KD
                                              (the release's own form gives zero gradient)
``sgm``         ``"covariance"`` (default)    the series' definition of the covariance-driven
                                              guidance the paper names (the release uses
                                              ``MSE(P1 + P1^T)``: ``sgm="released"``)
``kd``          ``None`` (default)            not part of KDAS: the classic logit baselines
                                              (``"pixel"``, ``"cwd"``) for the ablation
==============  ===========================  ==================================================

So ``KDASLoss()`` with no arguments is KDAS as this series teaches it, the ``kdas`` arm of
:data:`kdas_utils.kdas.ARMS`.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionKD, FeatureAttentionKD
from .baselines import KD_FORMS, make_logit_kd
from .losses import deep_supervision_loss
from .sgm import CovarianceGuidance, SymmetricGuidance

AT_FORMS = ("paper", "released", "feature", None)
SGM_FORMS = ("released", "covariance", None)

ALPHA, TAU = 0.3, 2.0  # the released code's weight of the distillation terms and its temperature
KDAS_TERMS = {"at": "paper", "sgm": "covariance"}  # KDAS as the series implements it (see the table above)


class KDASLoss(nn.Module):
    """KDAS's distillation loss.

    Args:
        alpha: weight of the distillation terms (:data:`ALPHA`).
        tau: the temperature of Attention-KD and of the logit KD (:data:`TAU`).
        at: ``"paper"``, ``"released"``, ``"feature"`` or ``None`` (see :mod:`.attention`).
        sgm: ``"released"``, ``"covariance"`` or ``None`` (see :mod:`.sgm`).
        kd: ``"pixel"``, ``"cwd"`` or ``None``: a classic logit-distillation term (see :mod:`.pixel`).
        seg_variant: the structure loss's ``"paper"`` (weighted BCE) or ``"released"`` form.
        covariance_features: the features of the covariance SGM.

    Call: ``loss_fn(student_out, teacher_out, mask)`` with two
    :class:`~kdas_utils.kdas.PolypOutput` and a ``(B, 1, H, W)`` float mask; returns a dict
    of scalar tensors ``total``, ``seg``, ``at``, ``sgm``, ``kd`` (a disabled term is 0). With
    ``sgm="covariance"`` the module holds learned projections: give its parameters to the
    student's optimiser (the engine does, for a :class:`DistillationObjective`).
    """

    def __init__(
        self,
        alpha: float = ALPHA,
        tau: float = TAU,
        at: str | None = KDAS_TERMS["at"],
        sgm: str | None = KDAS_TERMS["sgm"],
        kd: str | None = None,
        seg_variant: str = "paper",
        covariance_features=("stage4", "cfm", "sam"),
    ):
        super().__init__()
        if at not in AT_FORMS:
            raise ValueError(f"at={at!r}: choose one of {AT_FORMS}")
        if sgm not in SGM_FORMS:
            raise ValueError(f"sgm={sgm!r}: choose one of {SGM_FORMS}")
        if kd not in KD_FORMS:
            raise ValueError(f"kd={kd!r}: choose one of {KD_FORMS}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha={alpha}: must lie in [0, 1]")
        self.alpha, self.tau, self.at_form, self.sgm_form, self.seg_variant = alpha, tau, at, sgm, seg_variant
        self.kd_form = kd
        self.covariance_features = tuple(covariance_features)
        self.at = None if at is None else FeatureAttentionKD() if at == "feature" else AttentionKD(at, tau)
        self.sgm = (
            None
            if sgm is None
            else SymmetricGuidance()
            if sgm == "released"
            else CovarianceGuidance(covariance_features)
        )
        self.kd = make_logit_kd(kd, tau)

    def settings(self) -> dict:
        """The terms and weights as plain values (recorded in training checkpoints)."""
        settings = {
            "alpha": self.alpha,
            "tau": self.tau,
            "at": self.at_form,
            "sgm": self.sgm_form,
            "seg_variant": self.seg_variant,
            "covariance_features": list(self.covariance_features) if self.sgm_form == "covariance" else None,
        }
        if self.kd_form is not None:  # recorded only when used: runs made before the term existed still match
            settings["kd"] = self.kd_form
        return settings

    @property
    def at_weight(self) -> float:
        """``tau^2`` for the KL forms of Attention-KD, 1 for the feature form."""
        return 1.0 if self.at_form == "feature" else self.tau**2

    def combine(
        self, seg: torch.Tensor, at: torch.Tensor, sgm: torch.Tensor, kd: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """``(1 - alpha) seg + alpha (w_AT at + sgm + kd)``."""
        return (1 - self.alpha) * seg + self.alpha * (self.at_weight * at + sgm + kd)

    def forward(self, student_out, teacher_out, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = deep_supervision_loss(student_out, mask, self.seg_variant)
        zero = seg.new_zeros(())
        at = self.at(student_out, teacher_out) if self.at is not None else zero
        sgm = self.sgm(student_out, teacher_out) if self.sgm is not None else zero
        kd = self.kd(student_out, teacher_out) if self.kd is not None else zero
        return {"total": self.combine(seg, at, sgm, kd), "seg": seg, "at": at, "sgm": sgm, "kd": kd}
