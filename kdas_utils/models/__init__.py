"""Models: building the teacher and the student with their ImageNet backbones, and loading weight files.

The networks themselves are the method's (:mod:`kdas_utils.kdas.polyp_pvt`); here they are built
by role with the weights a user has (:mod:`.pretrained`, :mod:`.weights`) and described
(:mod:`.summary`).

from kdas_utils.models import build_teacher, build_student
out = build_teacher()(x)     # out.p1, out.p2 (B, 1, H, W) logits; out.stages, out.cim, out.cfm, out.sam
"""

from .builders import build_student, build_teacher
from .summary import describe
from .weights import (
    LoadReport,
    MissingWeightsError,
    WeightLoadError,
    load_backbone_weights,
    load_network,
    load_official,
    load_polyp_pvt,
    load_trained,
)

__all__ = [
    "LoadReport",
    "MissingWeightsError",
    "WeightLoadError",
    "build_student",
    "build_teacher",
    "describe",
    "load_backbone_weights",
    "load_network",
    "load_official",
    "load_polyp_pvt",
    "load_trained",
]
