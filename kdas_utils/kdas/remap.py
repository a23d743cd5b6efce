"""Key remaps beside the model (timm's ``checkpoint_filter_fn`` way): the names of the two weight
formats the method's authors published -> this package's :class:`~kdas_utils.kdas.PolypPVT`, and back.

* the PVTv2 release (``pvt_v2_b2.pth``: ``patch_embed1.``, ``block1.``) -> timm ``features_only``
  (``stages_0.``), through timm's own filter; its classifier ``head.`` is dropped and reported;
* the Polyp-PVT checkpoint (``PolypPVT.pth``, and a student saved the released KDAS code's way):
  its decoder's module names (``Translayer2_0``, ``CFM``, ``out_SAM`` ...) -> ours
  (:data:`POLYP_PVT_DECODER_NAMES`).

Reading files, checking shapes and reporting what did not fit is :mod:`kdas_utils.models.weights`'s
work; here are only the names (source: the released Polyp-PVT and PVTv2 code's module names).
"""

from __future__ import annotations

import re

import torch
from timm.models.pvt_v2 import checkpoint_filter_fn
from torch import nn

# Polyp-PVT module name -> our module name (decoder only).
POLYP_PVT_DECODER_NAMES = {
    "ca": "cim.ca",
    "sa": "cim.sa",
    "Translayer2_0": "translate1",
    "Translayer2_1": "translate2",
    "Translayer3_1": "translate3",
    "Translayer4_1": "translate4",
    "CFM": "cfm",
    "SAM": "sam",
    "out_CFM": "head_p1",
    "out_SAM": "head_p2",
}
# Keys of the PVTv2 release that a segmentation model has no use for.
IGNORED_RELEASE_KEYS = re.compile(r"^head\.")


def backbone_from_release(state: dict[str, torch.Tensor], backbone: nn.Module):
    """PVTv2 release names -> timm ``features_only`` names (``stages_N.``).

    Returns ``(mapped_state, ignored_keys)``: the classifier head of the release is dropped
    and reported, since a segmentation model has no use for it.
    """
    ignored = sorted(k for k in state if IGNORED_RELEASE_KEYS.match(k))
    kept = {k: v for k, v in state.items() if k not in ignored}
    timm_state = checkpoint_filter_fn(kept, backbone)
    return {re.sub(r"^stages\.(\d+)\.", r"stages_\1.", k): v for k, v in timm_state.items()}, ignored


def is_pvt_release(state: dict[str, torch.Tensor]) -> bool:
    """Whether a backbone state dict uses the PVTv2 release's names (``patch_embed1.``, ``block1.``)
    rather than timm's (``patch_embed.``, ``stages.``); timm's ``checkpoint_filter_fn`` draws the
    same line."""
    return "patch_embed.proj.weight" not in state and "patch_embed1.proj.weight" in state


def polyp_pvt_to_ours(state: dict[str, torch.Tensor], backbone_module: nn.Module):
    """A Polyp-PVT-format state dict -> ``(our names, ignored keys)`` for a :class:`PolypPVT` whose
    backbone is ``backbone`` (the release's backbone names through :func:`backbone_from_release`)."""
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    backbone, ignored = backbone_from_release(backbone, backbone_module)
    mapped = {"backbone." + k: v for k, v in backbone.items()}
    ignored = ["backbone." + k for k in ignored]
    for key, value in state.items():
        if key.startswith("backbone."):
            continue
        head, _, rest = key.partition(".")
        mapped[f"{POLYP_PVT_DECODER_NAMES.get(head, head)}.{rest}"] = value
    return mapped, ignored


def to_pvt_release_keys(backbone_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``features_only`` backbone names -> PVTv2 release names (the inverse mapping)."""
    out = {}
    for key, value in backbone_state.items():
        key = key.replace("patch_embed.", "patch_embed1.")
        key = re.sub(r"^stages_(\d+)\.downsample\.", lambda m: f"patch_embed{int(m.group(1)) + 1}.", key)
        key = re.sub(r"^stages_(\d+)\.blocks\.(\d+)\.", lambda m: f"block{int(m.group(1)) + 1}.{m.group(2)}.", key)
        key = re.sub(r"^stages_(\d+)\.norm\.", lambda m: f"norm{int(m.group(1)) + 1}.", key)
        key = key.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")
        out[key] = value
    return out


def to_polyp_pvt_keys(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our :class:`PolypPVT` names -> Polyp-PVT checkpoint names."""
    ours_to_theirs = {v: k for k, v in POLYP_PVT_DECODER_NAMES.items()}
    backbone = {k.removeprefix("backbone."): v for k, v in model_state.items() if k.startswith("backbone.")}
    out = {"backbone." + k: v for k, v in to_pvt_release_keys(backbone).items()}
    for key, value in model_state.items():
        if key.startswith("backbone."):
            continue
        for ours, theirs in ours_to_theirs.items():
            if key.startswith(ours + "."):
                key = theirs + key[len(ours) :]
                break
        out[key] = value
    return out
