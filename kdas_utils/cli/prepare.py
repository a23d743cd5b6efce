"""``kdas prepare-data`` and ``kdas prepare-weights``."""

from __future__ import annotations

from ..config import (
    WEIGHTS_VARIABLE,
    get_profile,
    weights_dir,
)
from ..data import find_dataset, prepare_kvasir_seg, prepare_pranet
from ..data.download import sha256sum
from ..models.pretrained import PVT_V2_RELEASE, prepare_polyp_pvt, prepare_pvt_v2
from ..runs import (
    profile_root,
)
from .common import (
    drive_fetch,
    profile_argument,
)


def _prepare_data(args) -> int:
    if args.download == "pranet":
        root = prepare_pranet(args.into, fetch=drive_fetch(args))
        found = find_dataset(root, verify=False)
        tests = ", ".join(f"{name} {len(pairs)}" for name, pairs in found["test"].items())
        print(
            f"PraNet's split at {root}: {len(found['train'])} training frames; test sets: {tests}. "
            f"It is the default data root with --into data, else: export KDAS_DATA_ROOT={root}"
        )
        return 0
    if args.download:
        root = prepare_kvasir_seg(args.into, allow_unpinned=args.allow_unpinned)
        print(
            f"Kvasir-SEG in the PraNet layout at {root} (900 training / 100 test frames, seeded split); "
            f"it is the default data root with --into data, else: export KDAS_DATA_ROOT={root}"
        )
        return 0
    profile = get_profile(args.profile)
    root = profile_root(profile)
    found = find_dataset(root)
    print(f"{profile.name} profile data at {root}: {len(found['train'])} training pairs")
    for name, pairs in found["test"].items():
        print(f"  test set {name}: {len(pairs)} pairs")
    return 0


def add_prepare_data(sub) -> None:
    """The ``kdas prepare-data`` parser, beside its handler :func:`_prepare_data`."""
    p = sub.add_parser(
        "prepare-data",
        help="write the synthetic set or check the real data; download Kvasir-SEG",
        description="Write the quick profile's synthetic data, or check the real data of the standard "
        "and paper profiles (PraNet layout under $KDAS_DATA_ROOT).",
    )
    profile_argument(p)
    p.add_argument(
        "--download",
        choices=("pranet", "kvasir-seg"),
        help="download instead, and arrange as <into>/polyp in the PraNet layout: pranet (PraNet's train and "
        "test archives from Google Drive, with gdown: the split of the paper's numbers) or kvasir-seg (Simula)",
    )
    p.add_argument("--into", default="data", help="folder for --download (default: data)")
    p.add_argument(
        "--allow-unpinned", action="store_true", help="accept a first download that has no published checksum"
    )
    p.add_argument("--mirror", metavar="URL", help="with --download pranet: fetch <URL>/TrainDataset.zip etc. instead")
    p.set_defaults(run=_prepare_data)


def _prepare_weights(args) -> int:
    if args.what == "polyp-pvt":
        path = prepare_polyp_pvt(fetch=drive_fetch(args))
        print(
            f"official Polyp-PVT teacher: {path} (sha256 {sha256sum(path)}); loads strictly into build_teacher(). "
            f"The colab and paper profiles now distil from it."
        )
        return 0
    for path in prepare_pvt_v2(url=args.mirror or PVT_V2_RELEASE):
        print(f"ImageNet backbone: {path} (sha256 {sha256sum(path)})")
    print(f"build_teacher(pretrained=True) and build_student(pretrained=True) load them from {WEIGHTS_VARIABLE}")
    print(f"({weights_dir()}), offline.")
    return 0


def add_prepare_weights(sub) -> None:
    """The ``kdas prepare-weights`` parser, beside its handler :func:`_prepare_weights`."""
    p = sub.add_parser(
        "prepare-weights",
        help="fetch the official Polyp-PVT teacher, or the ImageNet PVTv2 backbones",
        description="Fetch weight files into $KDAS_WEIGHTS_DIR (default data/weights), check that they load "
        "strictly, and record their sha256. polyp-pvt: the trained Polyp-PVT (PolypPVT.pth, about 100 MB) from "
        "the Google Drive folder the Polyp-PVT README links, with gdown; the colab and paper profiles then distil "
        "from it. pvt-v2: the PVTv2 release files pvt_v2_b2.pth and pvt_v2_b0.pth from the authors' GitHub "
        "release, which build_teacher/build_student(pretrained=True) then load offline.",
    )
    p.add_argument("what", choices=("polyp-pvt", "pvt-v2"), help="which weights")
    p.add_argument("--mirror", metavar="URL", help="fetch <URL>/<file name> from a plain HTTP mirror instead")
    p.add_argument("--debug", action="store_true", help="on an error, show the Python traceback too")
    p.set_defaults(run=_prepare_weights)
