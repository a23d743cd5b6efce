"""The two networks of KDAS, built by role: the teacher (Polyp-PVT on PVTv2-B2) and the student
(the same decoder on PVTv2-B0), optionally with ImageNet backbones. Above the network
(:func:`kdas_utils.kdas.polyp_pvt`), the weight formats (:mod:`.weights`) and the finding of weight
files (:mod:`.pretrained`), so that none of those needs to import it."""

from __future__ import annotations

from ..kdas.polyp_pvt import PolypPVT, polyp_pvt
from .pretrained import load_pretrained_backbone


def _build(role: str, pretrained: bool, drop_path_rate: float) -> PolypPVT:
    model = polyp_pvt(role, drop_path_rate=drop_path_rate)
    if pretrained:
        load_pretrained_backbone(model)
    return model


def build_teacher(pretrained: bool = False, drop_path_rate: float = 0.0) -> PolypPVT:
    """Polyp-PVT on PVTv2-B2: 25.11M parameters (backbone 24.85M).

    With ``pretrained``, the backbone starts from ImageNet weights: ``pvt_v2_b2.pth`` (PVTv2
    release or timm format) in ``KDAS_WEIGHTS_DIR`` (default ``data/weights/``), else timm's hub,
    else :class:`~kdas_utils.models.MissingWeightsError` (see :mod:`kdas_utils.models.pretrained`).
    ``model.weights_source`` says which.
    """
    return _build("teacher", pretrained, drop_path_rate)


def build_student(pretrained: bool = False, drop_path_rate: float = 0.0) -> PolypPVT:
    """The KDAS student, Polyp-PVT's decoder on PVTv2-B0: 3.65M parameters (backbone 3.41M).

    ``pretrained`` as :func:`build_teacher`, with ``pvt_v2_b0.pth``.
    """
    return _build("student", pretrained, drop_path_rate)
