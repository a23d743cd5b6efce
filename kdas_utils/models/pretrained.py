"""Where the ImageNet-pretrained backbones and the official Polyp-PVT teacher come from.

Polyp-PVT and KDAS start both backbones from ImageNet weights, and the released KDAS code distils
from the trained Polyp-PVT checkpoint (``teacher_weights/PolypPVT.pth``). The ``paper`` and
``colab`` profiles do the same (``Profile.pretrained``, ``Profile.official_teacher``).

**Backbones** (:func:`load_pretrained_backbone`, behind ``build_teacher(pretrained=True)`` and
``build_student(pretrained=True)``), in this order:

1. a file in ``KDAS_WEIGHTS_DIR`` (default ``data/weights/``), for ``pvt_v2_b2`` (teacher) and
   ``pvt_v2_b0`` (student): ``pvt_v2_b2.pth``, the PVTv2 release file (or a timm-format state dict
   saved under that name); ``pvt_v2_b2.in1k/model.safetensors``, timm's hub folder
   (``hf download timm/pvt_v2_b2.in1k --local-dir data/weights/pvt_v2_b2.in1k``); or
   ``pvt_v2_b2.safetensors``. ``kdas prepare-weights pvt-v2`` fetches the release files from the
   PVTv2 repository's GitHub release (:func:`prepare_pvt_v2`);
2. timm's hub weights (``pvt_v2_b2.in1k``), when huggingface.co can be reached;
3. else :class:`MissingWeightsError`, naming both ways and the exact file names.

There is never a silent fall-back to random weights. The model records where its weights came from
in ``model.weights_source`` (a string), which training prints and checkpoints keep.

**The official teacher** (:func:`prepare_polyp_pvt`, ``kdas prepare-weights polyp-pvt``): fetched
from the Google Drive folder the Polyp-PVT README links (with ``gdown``, see
:mod:`kdas_utils.data.gdrive`), checked to load strictly into :func:`build_teacher`, kept as
``KDAS_WEIGHTS_DIR/PolypPVT.pth`` with its sha256 beside it. :func:`official_teacher_file` tells a
profile whether to use it (:func:`kdas_utils.runs.train_teacher`).

The order, the file names accepted and the checks are this series' choices; the files are the
official releases.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import timm
import torch
from torch import nn

from ..config import WEIGHTS_VARIABLE, Profile, weights_dir
from ..data.download import download, sha256sum
from ..data.gdrive import DRIVE_FILES, Fetch, fetch_drive_file, write_record
from ..kdas.polyp_pvt import BACKBONES, PolypPVT
from ..kdas.remap import backbone_from_release, is_pvt_release
from .weights import MissingWeightsError, WeightLoadError, load_into, load_polyp_pvt, read_state_dict

# The PVTv2 authors' GitHub release (whai362/PVT, tag v2): a stable direct address for the ImageNet backbones.
PVT_V2_RELEASE = "https://github.com/whai362/PVT/releases/download/v2"
# timm's names for the same ImageNet-1k weights on the Hugging Face Hub.
HUB_TAGS = {"pvt_v2_b2": "pvt_v2_b2.in1k", "pvt_v2_b0": "pvt_v2_b0.in1k"}
OFFICIAL_TEACHER = "PolypPVT.pth"
HUB_HOST = "huggingface.co"


def backbone_candidates(backbone: str) -> list[Path]:
    """The files looked for in ``KDAS_WEIGHTS_DIR`` for ``backbone`` (e.g. ``pvt_v2_b0``), in order."""
    folder = weights_dir()
    return [
        folder / f"{backbone}.pth",
        folder / HUB_TAGS.get(backbone, backbone) / "model.safetensors",
        folder / f"{backbone}.safetensors",
    ]


def backbone_file(backbone: str) -> Path | None:
    """The first of :func:`backbone_candidates` that exists, else ``None``."""
    return next((path for path in backbone_candidates(backbone) if path.is_file()), None)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether timm's hub is worth trying: not when ``HF_HUB_OFFLINE`` is set, nor when
    huggingface.co does not answer on port 443 within ``timeout`` seconds (without a proxy set;
    behind one, the hub is simply tried). Offline, timm's own retries take about a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_backbone_state(backbone: str) -> dict[str, torch.Tensor]:
    """timm's ImageNet weights for ``backbone`` from the Hugging Face Hub, as the state dict of its
    ``features_only`` model (the names of ``PolypPVT.backbone``)."""
    return timm.create_model(backbone, pretrained=True, features_only=True).state_dict()


def _short(digest: str) -> str:
    return digest[:12]


def load_pretrained_backbone(model: nn.Module) -> str:
    """Load ImageNet weights into ``model.backbone`` (a :class:`~kdas_utils.kdas.PolypPVT`) from
    ``KDAS_WEIGHTS_DIR``, else timm's hub; set and return ``model.weights_source``.

    Raises:
        MissingWeightsError: no file and no hub; the message names ``KDAS_WEIGHTS_DIR`` and the files.
        WeightLoadError: a file is there but does not fit this backbone (e.g. B0 weights for B2).
    """
    name = model.backbone_name
    path = backbone_file(name)
    if path is not None:
        state = read_state_dict(path)
        form = "PVTv2 release format" if is_pvt_release(state) else "timm format"
        mapped, ignored = backbone_from_release(state, model.backbone)
        load_into(model.backbone, mapped, path, ignored, strict=True, expected=name)
        model.weights_source = f"ImageNet {name}: {path} ({form}, sha256 {_short(sha256sum(path))})"
        return model.weights_source
    cause = f"{HUB_HOST} cannot be reached"
    if hub_reachable():
        try:
            state = hub_backbone_state(name)
        except Exception as error:  # offline, hub errors, a partial cache: all mean "not from the hub"
            cause = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        else:
            load_into(model.backbone, state, f"timm hub {HUB_TAGS.get(name, name)}", [], strict=True, expected=name)
            model.weights_source = f"ImageNet {name}: timm hub {HUB_TAGS.get(name, name)}"
            return model.weights_source
    looked = ", ".join(
        p.name if p.parent == weights_dir() else f"{p.parent.name}/{p.name}" for p in backbone_candidates(name)
    )
    raise MissingWeightsError(
        f"no ImageNet weights for {name}: none in {WEIGHTS_VARIABLE} ({weights_dir()}; looked for {looked}), and "
        f"timm's hub ({HUB_TAGS.get(name, name)}) needs the internet ({cause}). Either put the PVTv2 release file "
        f"{name}.pth in {weights_dir()} (kdas prepare-weights pvt-v2 downloads it from {PVT_V2_RELEASE}/{name}.pth; "
        f"or set {WEIGHTS_VARIABLE} to the folder that holds it), or run where {HUB_HOST} can be reached. To train "
        f"from random weights instead, build with pretrained=False (or choose the quick or standard profile) and "
        f"load a file yourself with kdas_utils.models.load_backbone_weights(model, path)."
    )


# --------------------------------------------------------------------------- preparing the files


def prepare_pvt_v2(backbones: tuple[str, ...] = ("pvt_v2_b2", "pvt_v2_b0"), url: str = PVT_V2_RELEASE) -> list[Path]:
    """Download the PVTv2 release files (``pvt_v2_b2.pth``, ``pvt_v2_b0.pth``) into
    ``KDAS_WEIGHTS_DIR`` from the authors' GitHub release (or the mirror ``url``), check that each
    loads strictly into its backbone, and record its sha256 beside it (trusted on the first download,
    verified on later ones). Returns the files."""
    paths = []
    for name in backbones:
        dest = weights_dir() / f"{name}.pth"
        record = dest.with_name(dest.name + ".sha256")
        pinned = record.read_text().split()[0] if record.is_file() else None
        download(f"{url.rstrip('/')}/{name}.pth", dest, sha256=pinned)
        try:
            load_pretrained_backbone(PolypPVT(name))
        except WeightLoadError:
            dest.unlink()
            raise
        if pinned is None:
            write_record(record, sha256sum(dest), dest.name)
        paths.append(dest)
    return paths


def check_official_teacher(path: Path) -> None:
    """Raise :class:`~kdas_utils.models.WeightLoadError` unless ``path`` loads strictly into
    :func:`~kdas_utils.models.build_teacher` (the Polyp-PVT teacher on PVTv2-B2)."""
    try:
        load_polyp_pvt(PolypPVT(BACKBONES["teacher"]), path)
    except (WeightLoadError, FileNotFoundError) as error:
        item = DRIVE_FILES["polyp-pvt"]
        raise WeightLoadError(
            f"the file fetched as {item.filename} ({item.link}) is not the Polyp-PVT teacher, so it was not kept: "
            f"{' '.join(str(error).split())}"
        ) from error


def prepare_polyp_pvt(fetch: Fetch | None = None) -> Path:
    """Fetch the official Polyp-PVT checkpoint into ``KDAS_WEIGHTS_DIR/PolypPVT.pth`` (Google Drive,
    with ``gdown``; ``fetch`` for a mirror, see :mod:`kdas_utils.data.gdrive`), check that it loads
    strictly into :func:`build_teacher`, record its sha256; return the path. From then on the ``paper``
    and ``colab`` profiles distil from it. A file already there (fetched before, or put there by hand)
    is checked and kept.

    Raises:
        DriveDownloadError: Drive refused; the message gives the link and the exact path for the file.
        WeightLoadError: the file is not the Polyp-PVT teacher (nothing is kept).
    """
    item = DRIVE_FILES["polyp-pvt"]
    return fetch_drive_file(item, weights_dir() / OFFICIAL_TEACHER, fetch, check=check_official_teacher)


def official_teacher_file(profile: Profile) -> Path | None:
    """The official teacher ``profile`` distils from: ``KDAS_WEIGHTS_DIR/PolypPVT.pth`` when the profile
    takes it (``official_teacher`` is ``"official"``, or ``"official if prepared"`` and the file is there),
    else ``None`` (the profile trains its teacher).

    Raises:
        MissingWeightsError: the profile needs the official teacher (``colab``) and it is not there.
    """
    if profile.official_teacher == "train":
        return None
    path = weights_dir() / OFFICIAL_TEACHER
    if path.is_file():
        return path
    if profile.official_teacher == "official":
        item = DRIVE_FILES["polyp-pvt"]
        raise MissingWeightsError(
            f"the {profile.name!r} profile distils from the official Polyp-PVT teacher, and {path} is not there "
            f"({WEIGHTS_VARIABLE}). Fetch it with: kdas prepare-weights polyp-pvt (or the button of the notebooks' "
            f"setup cell on Colab); or download {item.filename} by hand from {item.link} and put it at {path}. "
            f"Or choose the paper profile, which trains a teacher when there is none."
        )
    return None


def describe_teacher(path: Path) -> str:
    """``model.weights_source`` of an official teacher loaded from ``path``."""
    return f"official Polyp-PVT checkpoint: {path} (sha256 {_short(sha256sum(path))})"
