"""Polyp-PVT (the KDAS teacher) and its PVTv2-B0 twin (the KDAS student).

Both are :class:`PolypPVT`: a timm PVTv2 backbone with ``features_only`` (four stages at
strides 4, 8, 16, 32) and the decoder of :mod:`kdas_utils.kdas.blocks`::

    stage1 --CIM--> translate1 (C) --x0.5--+
    stage2 --translate2 (C)--+             |
    stage3 --translate3 (C)--+--CFM--> cfm (C, H/8) --SAM(cfm, edge)--> sam (C, H/8)
    stage4 --translate4 (C)--+             |                             |
                                      head_p1 -> P1 (x8)             head_p2 -> P2 (x8)

Inference uses ``sigmoid(P1 + P2)``. Every intermediate map is returned in a
:class:`PolypOutput`, so distillation and visualisation code need no hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import CFM, CIM, SAM, BasicConv2d

BACKBONES = {"teacher": "pvt_v2_b2", "student": "pvt_v2_b0"}
FEATURES = ("stage1", "stage2", "stage3", "stage4", "cim", "cfm", "sam")


@dataclass
class PolypOutput:
    """What :class:`PolypPVT` returns.

    Attributes:
        p1: ``(B, 1, H, W)`` logits of the CFM head.
        p2: ``(B, 1, H, W)`` logits of the SAM head.
        stages: the four backbone maps, ``(B, C_i, H/s_i, W/s_i)`` for s = 4, 8, 16, 32.
            Each PVTv2 stage ends in a LayerNorm, which makes ``sum_c F_c^2`` nearly the same at
            every position: use ``prenorm`` for where a stage is strong.
        prenorm: the same four maps *before* each stage's final LayerNorm (same shapes): the
            features whose activation energy varies across the frame (attention maps, the
            ``feature`` form of Attention-KD).
        cim: ``(B, C_1, H/4, W/4)`` CIM output.
        cfm: ``(B, 32, H/8, W/8)`` CFM output.
        sam: ``(B, 32, H/8, W/8)`` SAM output.
    """

    p1: torch.Tensor
    p2: torch.Tensor
    stages: tuple[torch.Tensor, ...]
    cim: torch.Tensor
    cfm: torch.Tensor
    sam: torch.Tensor
    prenorm: tuple[torch.Tensor, ...] = ()

    @property
    def logits(self) -> torch.Tensor:
        """``(B, 1, H, W)`` ``P1 + P2``; its sigmoid is the prediction."""
        return self.p1 + self.p2

    def feature(self, name: str) -> torch.Tensor:
        """The map called ``name``: ``stage1`` ... ``stage4``, ``cim``, ``cfm``, ``sam``, ``p1`` or ``p2``."""
        if name.startswith("stage") and name in FEATURES:
            return self.stages[int(name[-1]) - 1]
        if name in FEATURES or name in ("p1", "p2"):
            return getattr(self, name)
        raise ValueError(f"feature {name!r}: choose one of {FEATURES + ('p1', 'p2')}")


@cache
def feature_channels(backbone: str, channels: int = 32) -> dict[str, int]:
    """Channels of every map of :class:`PolypOutput` for a Polyp-PVT on ``backbone``, read from
    the backbone's ``feature_info`` (built on the ``meta`` device: no memory, no weights)."""
    with torch.device("meta"):
        info = timm.create_model(backbone, features_only=True).feature_info.channels()
    return {**{f"stage{i + 1}": c for i, c in enumerate(info)}, "cim": info[0], "cfm": channels, "sam": channels}


class PolypPVT(nn.Module):
    """Polyp-PVT on any timm PVTv2 backbone.

    Args:
        backbone: a timm model name, ``pvt_v2_b2`` (teacher) or ``pvt_v2_b0`` (student).
        channels: decoder width ``C`` (32 in the paper).
        pretrained: load timm's ImageNet weights for the backbone straight from the Hugging Face Hub
            (needs the internet). :func:`build_teacher` and :func:`build_student` look for local files
            first (:mod:`kdas_utils.models.pretrained`).
        drop_path_rate: stochastic depth of the backbone's blocks (timm's linear rule over the
            blocks); the released KDAS code trains both backbones with 0.1. It acts in
            ``train()`` mode only: ``eval()`` outputs do not depend on it.
    """

    def __init__(
        self, backbone: str = "pvt_v2_b2", channels: int = 32, pretrained: bool = False, drop_path_rate: float = 0.0
    ):
        super().__init__()
        self.backbone_name, self.channels, self.drop_path_rate = backbone, channels, drop_path_rate
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained, features_only=True, drop_path_rate=drop_path_rate
        )
        # Where the weights came from, in words: training prints it and checkpoints keep it.
        self.weights_source = f"ImageNet {backbone}: timm hub" if pretrained else "random initialisation"
        c1, c2, c3, c4 = self.backbone.feature_info.channels()
        self.cim = CIM(c1)
        self.translate1 = BasicConv2d(c1, channels, 1)
        self.translate2 = BasicConv2d(c2, channels, 1)
        self.translate3 = BasicConv2d(c3, channels, 1)
        self.translate4 = BasicConv2d(c4, channels, 1)
        self.cfm = CFM(channels)
        self.sam = SAM(num_in=channels)
        self.head_p1 = nn.Conv2d(channels, 1, 1)
        self.head_p2 = nn.Conv2d(channels, 1, 1)
        self._prenorm: list[torch.Tensor] = []
        for i in range(4):  # keep the input of each stage's final LayerNorm, (B, h*w, C_i)
            getattr(self.backbone, f"stages_{i}").norm.register_forward_pre_hook(self._keep_prenorm)

    def _keep_prenorm(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._prenorm.append(inputs[0])

    def forward(self, x: torch.Tensor) -> PolypOutput:
        """``x (B, 3, H, W)``, ImageNet-normalised, ``H`` and ``W`` multiples of 32."""
        self._prenorm = []
        stages = tuple(self.backbone(x))
        prenorm = tuple(t.transpose(1, 2).reshape(s.shape) for t, s in zip(self._prenorm, stages))
        self._prenorm = []
        s1, s2, s3, s4 = stages
        cim = self.cim(s1)
        cfm = self.cfm(self.translate4(s4), self.translate3(s3), self.translate2(s2))
        edge = F.interpolate(self.translate1(cim), scale_factor=0.5, mode="bilinear", align_corners=True)
        sam = self.sam(cfm, edge)
        size = x.shape[-2:]
        p1 = F.interpolate(self.head_p1(cfm), size=size, mode="bilinear")
        p2 = F.interpolate(self.head_p2(sam), size=size, mode="bilinear")
        return PolypOutput(p1=p1, p2=p2, stages=stages, prenorm=prenorm, cim=cim, cfm=cfm, sam=sam)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` polyp probabilities, ``sigmoid(P1 + P2)``."""
        return torch.sigmoid(self(x).logits)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def polyp_pvt(role: str, drop_path_rate: float = 0.0) -> PolypPVT:
    """The network of ``role`` (a key of :data:`BACKBONES`), timm's way: the variants are data.

    ``"teacher"``: Polyp-PVT on PVTv2-B2, 25.11M parameters (backbone 24.85M);
    ``"student"``: the same decoder on PVTv2-B0, 3.65M parameters (backbone 3.41M). Randomly
    initialised; :func:`kdas_utils.models.build_teacher` and ``build_student`` add the ImageNet
    backbones. ``drop_path_rate``: the backbone's stochastic depth (the released code trains with 0.1).
    """
    if role not in BACKBONES:
        raise ValueError(f"role={role!r}: choose one of {list(BACKBONES)}")
    return PolypPVT(BACKBONES[role], drop_path_rate=drop_path_rate)
