"""Models: the Polyp-PVT teacher, the KDAS student, and loading their official weights.

from kdas_utils.models import build_teacher, build_student
out = build_teacher()(x)     # out.p1, out.p2 (B, 1, H, W) logits; out.stages, out.cim, out.cfm, out.sam
"""

from .blocks import CFM, CIM, GCN, SAM, BasicConv2d, ChannelAttention, SpatialAttention
from .builders import build_student, build_teacher
from .polyp_pvt import (
    BACKBONES,
    FEATURES,
    PolypOutput,
    PolypPVT,
    count_parameters,
    feature_channels,
)
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
    "BACKBONES",
    "BasicConv2d",
    "CFM",
    "FEATURES",
    "CIM",
    "ChannelAttention",
    "GCN",
    "LoadReport",
    "MissingWeightsError",
    "PolypOutput",
    "PolypPVT",
    "SAM",
    "SpatialAttention",
    "WeightLoadError",
    "build_student",
    "build_teacher",
    "count_parameters",
    "describe",
    "feature_channels",
    "load_backbone_weights",
    "load_network",
    "load_official",
    "load_polyp_pvt",
    "load_trained",
]
