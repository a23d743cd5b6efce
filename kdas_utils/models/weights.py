"""Loading the official weight files into :class:`~kdas_utils.kdas.PolypPVT`.

Two formats are understood:

* the **PVTv2 release** backbone files ``pvt_v2_b0.pth`` / ``pvt_v2_b2.pth`` (keys such as
  ``patch_embed1.proj.weight``, ``block1.0.attn.q.weight``, ``norm1.weight``, ``head.weight``).
  timm's own :func:`timm.models.pvt_v2.checkpoint_filter_fn` renames them to timm's modules;
  we only add the ``stages.N`` -> ``stages_N`` step of timm's ``features_only`` wrapper;
* the **Polyp-PVT checkpoint** ``PolypPVT.pth``: the backbone under ``backbone.`` in the
  release names above, and the decoder under Polyp-PVT's module names (``Translayer2_0``,
  ``CFM``, ``ca``, ``sa``, ``SAM``, ``out_CFM``, ``out_SAM``), mapped by
  :data:`~kdas_utils.kdas.remap.POLYP_PVT_DECODER_NAMES`. The names themselves (both ways) live
  beside the model, in :mod:`kdas_utils.kdas.remap`.

Files are read with ``torch.load(..., weights_only=True)``: a weight file cannot run code.
Every load returns a :class:`LoadReport`; keys that do not fit raise unless ``strict=False``.

No official file can be downloaded here, so ``tests/test_weights.py`` writes files in these
formats from randomly initialised models (with :func:`~kdas_utils.kdas.remap.to_pvt_release_keys` and
:func:`~kdas_utils.kdas.remap.to_polyp_pvt_keys`, written independently of timm's mapping) and proves that loading
them reproduces the weights exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import KDASError
from ..files import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint
from ..kdas.polyp_pvt import BACKBONES, PolypPVT
from ..kdas.remap import backbone_from_release, is_pvt_release, polyp_pvt_to_ours

__all__ = [
    "LoadReport",
    "MissingWeightsError",
    "WeightLoadError",
    "is_pvt_release",
    "load_backbone_weights",
    "load_network",
    "load_official",
    "load_polyp_pvt",
    "load_trained",
]


class WeightLoadError(KDASError, RuntimeError):
    """A weight file does not fit the model; the message lists the keys."""


class MissingWeightsError(WeightLoadError):
    """Pretrained weights were asked for and none can be had; the message says where to put them
    (see :mod:`kdas_utils.models.pretrained`)."""


@dataclass
class LoadReport:
    """What a load did: tensors loaded, and keys missing, unexpected or deliberately ignored."""

    path: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.loaded} tensors loaded"]
        for name in ("missing", "unexpected", "ignored"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")
                lines.append(f"  {name} ({len(keys)}): {shown}")
        return "\n".join(lines)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a ``.pth`` / ``.pt`` / ``.bin`` file (``torch.save``) or a ``.safetensors``
    file (timm's hub format), without a ``module.`` prefix or a ``state_dict`` / ``model`` wrapper."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found")
    try:
        if path.suffix == ".safetensors":
            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a zip/pickle, truncated, or a pickle that needs code
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightLoadError(
            f"{path}: not a PyTorch weight file that can be read safely ({first}); "
            f"give a .pth saved with torch.save(model.state_dict(), ...)"
        ) from error
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise WeightLoadError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_into(
    module: nn.Module, state: dict[str, torch.Tensor], path, ignored: list[str], strict: bool, expected: str
) -> LoadReport:
    own = module.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    wrong_shape = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if wrong_shape:
        k = wrong_shape[0]
        raise WeightLoadError(
            f"{path}: {len(wrong_shape)} tensors have the wrong shape, e.g. {k}: file {tuple(state[k].shape)} vs "
            f"model {tuple(own[k].shape)}. The model is built on {expected}: is this its file?"
        )
    report = LoadReport(str(path), len(own.keys() & state.keys()), missing, unexpected, ignored)
    if strict and (missing or unexpected):
        raise WeightLoadError(f"weights do not fit the model (pass strict=False to load what fits):\n{report}")
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return report


def load_backbone_weights(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load a PVTv2 release file (or a timm-format backbone state dict, ``.pth`` or ``.safetensors``)
    into ``model.backbone``."""
    mapped, ignored = backbone_from_release(read_state_dict(path), model.backbone)
    return load_into(model.backbone, mapped, path, ignored, strict, model.backbone_name)


def load_polyp_pvt(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """Load an official Polyp-PVT checkpoint (``PolypPVT.pth``) into a :class:`PolypPVT`."""
    return _load_polyp_pvt_state(model, read_state_dict(path), path, strict)


def _load_polyp_pvt_state(model: nn.Module, state: dict[str, torch.Tensor], path, strict: bool) -> LoadReport:
    mapped, ignored = polyp_pvt_to_ours(state, model.backbone)
    return load_into(model, mapped, path, ignored, strict, model.backbone_name)


def load_official(path: str | Path) -> nn.Module:
    """A network rebuilt for a Polyp-PVT-format checkpoint: the official ``PolypPVT.pth``
    teacher (PVTv2-B2) or a KDAS student saved the released code's way (PVTv2-B0), told
    apart by the width of ``backbone.patch_embed1``. Returned in ``eval()`` mode."""
    roles = {64: "teacher", 32: "student"}  # the width of the first patch embedding
    state = read_state_dict(path)
    stem = state.get("backbone.patch_embed1.proj.weight")
    width = None if stem is None else stem.shape[0]
    if width not in roles:
        raise WeightLoadError(
            f"{path}: not a Polyp-PVT-format checkpoint (backbone.patch_embed1.proj.weight is "
            f"{'missing' if stem is None else f'{width} wide'}; expected 64 for PVTv2-B2 or 32 for "
            f"B0). Files this series reads as a network: an engine checkpoint (best.pt), a state_dict of "
            f"build_student() or build_teacher() (torch.save(model.state_dict(), path)), or a Polyp-PVT-format file."
        )
    model = PolypPVT(BACKBONES[roles[width]])
    _load_polyp_pvt_state(model, state, path, strict=True)
    model.weights_source = f"Polyp-PVT-format checkpoint: {path}"
    return model.eval()


def load_trained(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the Polyp-PVT network stored in an engine checkpoint (``best.pt``, ``last.pt`` or
    ``epoch-<n>.pt``) and load its weights; returned in ``eval()`` mode on ``device``.

    Raises:
        kdas_utils.engine.CheckpointError: the file is not an engine checkpoint, or records no backbone.
    """
    state = load_checkpoint(path)
    arch = state.get("arch") or {}
    if not arch.get("backbone"):
        raise CheckpointError(f"{path}: records no backbone name, so the network cannot be rebuilt")
    model = PolypPVT(
        arch["backbone"], channels=arch.get("channels") or 32, drop_path_rate=arch.get("drop_path_rate") or 0.0
    )
    model.load_state_dict(state["model"])
    model.weights_source = f"engine checkpoint: {path}"
    return model.to(device).eval()


# The first weight of the timm backbone, in a state_dict of build_student() / build_teacher(): its
# width tells the two apart (32: PVTv2-B0, 64: PVTv2-B2).
OWN_STEM = "backbone.patch_embed.proj.weight"


def load_network(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Any network file of the series, told apart by its contents: an engine checkpoint
    (:func:`load_trained`), the package's own ``state_dict`` of :func:`build_student` or
    :func:`build_teacher` (``torch.save(model.state_dict(), path)``), or a Polyp-PVT-format file such
    as the official ``PolypPVT.pth`` (:func:`load_official`). Returned in ``eval()`` mode on ``device``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: tensors stay on disk
    except Exception:  # missing, legacy or not a weight file: load_official says which
        state = None
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        return load_trained(path, device)
    if isinstance(state, dict) and isinstance(state.get(OWN_STEM), torch.Tensor):
        return _load_own_state(state, path).to(device)
    return load_official(path).to(device)


def _load_own_state(state: dict[str, torch.Tensor], path) -> nn.Module:
    """A network rebuilt for a ``state_dict`` of :func:`build_student` or :func:`build_teacher`."""
    roles = {64: "teacher", 32: "student"}
    width = state[OWN_STEM].shape[0]
    if width not in roles:
        raise WeightLoadError(f"{path}: {OWN_STEM} is {width} wide; expected 32 (the student) or 64 (the teacher)")
    model = PolypPVT(BACKBONES[roles[width]])
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise WeightLoadError(f"{path}: a state_dict that does not fit the {roles[width]} ({first[0]})") from error
    model.weights_source = f"state_dict of the {roles[width]}: {path}"
    return model.eval()
