"""Distillation: Attention-KD, the Symmetrical Guiding Module, the logit-KD baselines and the KDAS loss.

from kdas_utils.distill import KDASLoss, DistillationObjective
loss_fn = KDASLoss()                                  # KDAS as the series teaches it (alpha 0.3, tau 2)
parts = loss_fn(student(x), teacher(x), mask)         # {"total", "seg", "at", "sgm", "kd"}
"""

from ..engine.objectives import DistillationObjective, clone_output
from .attention import AttentionKD, FeatureAttentionKD, activation_attention, activation_energy, self_attention_map
from .kdas_loss import ALPHA, AT_FORMS, KDAS_TERMS, SGM_FORMS, TAU, KDASLoss
from .pixel import KD_FORMS, ChannelWiseKD, PixelKD, channel_wise_kd, make_logit_kd, pixel_kd
from .sgm import CovarianceGuidance, SymmetricGuidance, channel_covariance, normalized_covariance, symmetric

__all__ = [
    "ALPHA",
    "AT_FORMS",
    "AttentionKD",
    "ChannelWiseKD",
    "CovarianceGuidance",
    "DistillationObjective",
    "FeatureAttentionKD",
    "KDASLoss",
    "KDAS_TERMS",
    "KD_FORMS",
    "PixelKD",
    "SGM_FORMS",
    "SymmetricGuidance",
    "TAU",
    "activation_attention",
    "activation_energy",
    "channel_covariance",
    "channel_wise_kd",
    "clone_output",
    "make_logit_kd",
    "normalized_covariance",
    "pixel_kd",
    "self_attention_map",
    "symmetric",
]
