"""KDAS itself: the two networks, the losses, the distillation step and the arms. Nothing else.

Trinh, Nguyen, Vo Thi, "KDAS: Knowledge Distillation via Attention Supervision Framework for
Polyp Segmentation" (arXiv 2312.08555). This subpackage imports torch, timm, numpy and the
standard library only; every other part of ``kdas_utils`` (data, engine, evaluation, plots, the
tools) imports it, never the other way round (``tests/test_imports.py``).

The objective, term by term (read top to bottom; "source" says who defines what the code computes:
the paper's text, the released code, or this series where the two leave a gap)::

    L_KDAS = (1 - alpha) L_seg + alpha (w_AT L_AT + L_SGM)

==================  ============================================  =================================================
symbol              code                                          source
==================  ============================================  =================================================
teacher             ``polyp_pvt("teacher")`` (:mod:`.polyp_pvt`)  Polyp-PVT on PVTv2-B2 (paper, release)
student             ``polyp_pvt("student")``                      the same decoder on PVTv2-B0 (paper, release)
CIM, CFM, SAM       :mod:`.blocks`                                Polyp-PVT's decoder (its release)
weight names        :mod:`.remap`                                 the PVTv2 and Polyp-PVT releases' key names
P1, P2, stage maps  :class:`PolypOutput`                          the networks' outputs (release)
L_st                :func:`structure_loss` (:mod:`.losses`)       paper: weighted BCE + weighted IoU; release:
                                                                  its BCE is unweighted (``variant="released"``)
L_seg               :func:`deep_supervision_loss`                 ``L_st(P1, G) + L_st(P2, G)`` (release);
                                                                  unlabelled frames left out (this series)
L_AT                :class:`AttentionKD` (:mod:`.attention`)      ``at="paper"``: this series' reading of the
                                                                  paper; ``"released"``: the release (zero
                                                                  gradient, NaN value); ``"feature"``: the
                                                                  classic baseline (:class:`FeatureAttentionKD`)
L_SGM               :class:`CovarianceGuidance` (:mod:`.sgm`)     ``sgm="covariance"``: this series' definition
                    :class:`SymmetricGuidance`                    of the guidance the paper names; ``"released"``:
                                                                  MSE(Sym(P1)) of the release
alpha, tau, w_AT    :data:`ALPHA`, :data:`TAU` (:mod:`.loss`)     the release (0.3, 2, ``tau^2``)
L_KDAS              :class:`KDASLoss` (:mod:`.loss`)              the sum above; ``KDASLoss()`` is the ``kdas`` arm
pixel KD, CWD       :class:`PixelKD`, :class:`ChannelWiseKD`      the classic baselines (not KDAS)
                    (:mod:`.baselines`)
frozen teacher      :class:`DistillationObjective`                the distillation step: the teacher in
                    (:mod:`.objective`)                           ``inference_mode``, so no gradient reaches it
                                                                  (the release back-propagates into it)
the arms            :data:`ARMS` (:mod:`.arms`)                   no-kd, at, sgm, kdas, released, pixel
==================  ============================================  =================================================

Example::

    from kdas_utils.kdas import ARMS, DistillationObjective, KDASLoss, polyp_pvt
    teacher, student = polyp_pvt("teacher"), polyp_pvt("student")
    objective = DistillationObjective(teacher, KDASLoss(**ARMS["kdas"]))
    loss, out, parts = objective(student, images, masks)   # (B, 3, H, W) images, (B, 1, H, W) masks
"""

from .arms import ARMS
from .attention import AttentionKD, FeatureAttentionKD, activation_attention, activation_energy, self_attention_map
from .baselines import KD_FORMS, ChannelWiseKD, PixelKD, channel_wise_kd, make_logit_kd, pixel_kd
from .blocks import CFM, CIM, GCN, SAM, BasicConv2d, ChannelAttention, SpatialAttention
from .loss import ALPHA, AT_FORMS, KDAS_TERMS, SGM_FORMS, TAU, KDASLoss
from .losses import boundary_weights, deep_supervision_loss, is_labelled, structure_loss, structure_terms
from .objective import DistillationObjective, SegmentationObjective, clone_output, objective_settings
from .polyp_pvt import BACKBONES, FEATURES, PolypOutput, PolypPVT, count_parameters, feature_channels, polyp_pvt
from .sgm import CovarianceGuidance, SymmetricGuidance, channel_covariance, normalized_covariance, symmetric

# fmt: off
__all__ = [
    "ALPHA", "ARMS", "AT_FORMS", "AttentionKD", "BACKBONES", "BasicConv2d", "CFM", "CIM", "ChannelAttention",
    "ChannelWiseKD", "CovarianceGuidance", "DistillationObjective", "FEATURES", "FeatureAttentionKD", "GCN",
    "KDASLoss", "KDAS_TERMS", "KD_FORMS", "PixelKD", "PolypOutput", "PolypPVT", "SAM", "SGM_FORMS",
    "SegmentationObjective", "SpatialAttention", "SymmetricGuidance", "TAU", "activation_attention",
    "activation_energy", "boundary_weights", "channel_covariance", "channel_wise_kd", "clone_output",
    "count_parameters", "deep_supervision_loss", "feature_channels", "is_labelled",
    "make_logit_kd", "normalized_covariance", "objective_settings", "pixel_kd", "polyp_pvt", "self_attention_map",
    "structure_loss", "structure_terms", "symmetric",
]
# fmt: on
