"""Distillation: Attention-KD, the Symmetrical Guiding Module and the KDAS loss.

    from kdas_utils.distill import KDASLoss, DistillationObjective
    loss_fn = KDASLoss(alpha=0.3, tau=2.0, at="paper", sgm="released")
    parts = loss_fn(student(x), teacher(x), mask)      # {"total", "seg", "at", "sgm"}
"""

from .attention import AttentionKD, FeatureAttentionKD, attention_map, spatial_attention
from .kdas_loss import AT_FORMS, SGM_FORMS, DistillationObjective, KDASLoss, clone_output
from .sgm import CovarianceGuidance, SymmetricGuidance, channel_covariance, normalized_covariance, symmetric

__all__ = [
    "AT_FORMS", "AttentionKD", "CovarianceGuidance", "DistillationObjective", "FeatureAttentionKD", "KDASLoss",
    "SGM_FORMS", "SymmetricGuidance", "attention_map", "channel_covariance", "clone_output", "normalized_covariance",
    "spatial_attention", "symmetric",
]
