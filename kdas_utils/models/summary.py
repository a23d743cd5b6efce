"""A table of a Polyp-PVT network's parts, printed from the model itself (notebook 02)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch

from ..kdas.polyp_pvt import PolypPVT, count_parameters

if TYPE_CHECKING:
    import pandas

ROLES = {
    "stage1": "PVTv2 stage 1 (with the patch embedding): low-level texture, edges",
    "stage2": "PVTv2 stage 2",
    "stage3": "PVTv2 stage 3",
    "stage4": "PVTv2 stage 4: high-level semantics",
    "cim": "CIM: channel then spatial attention on stage 1",
    "translate1-4": "1x1 conv-BN layers to the decoder width C",
    "cfm": "CFM: fuses stages 4, 3, 2 top-down",
    "sam": "SAM: graph reasoning on CFM, guided by the CIM edge map",
    "head_p1": "1x1 conv on CFM, upsampled x8: P1",
    "head_p2": "1x1 conv on SAM, upsampled x8: P2",
}


def _shape(t: torch.Tensor) -> str:
    return " x ".join(str(s) for s in t.shape[1:])


def describe(model: PolypPVT, image_size: int = 352) -> pandas.DataFrame:
    """One row per part of ``model``: its role, output shape ``C x H x W`` and stride for one
    ``image_size`` input, and its parameter count. The rows add up to the model's total."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    model.train(was_training)
    backbone = dict(model.backbone.named_children())
    stage_params = [count_parameters(backbone[f"stages_{i}"]) for i in range(4)]
    stage_params[0] += count_parameters(backbone["patch_embed"])
    translate = sum(count_parameters(getattr(model, f"translate{i}")) for i in range(1, 5))
    parts = [(f"stage{i + 1}", out.stages[i], stage_params[i]) for i in range(4)] + [
        ("cim", out.cim, count_parameters(model.cim)),
        ("translate1-4", None, translate),
        ("cfm", out.cfm, count_parameters(model.cfm)),
        ("sam", out.sam, count_parameters(model.sam)),
        ("head_p1", out.p1, count_parameters(model.head_p1)),
        ("head_p2", out.p2, count_parameters(model.head_p2)),
    ]
    rows = [
        {
            "part": name,
            "output (C x H x W)": _shape(t) if t is not None else f"{model.channels} ch each",
            "stride": image_size // t.shape[-1] if t is not None else "",
            "parameters": params,
            "role": ROLES[name],
        }
        for name, t, params in parts
    ]
    table = pd.DataFrame(rows).set_index("part")
    if table["parameters"].sum() != count_parameters(model):
        raise RuntimeError("describe() missed a part of the model: its rows must add up to the total")
    return table
