"""From downloaded releases to a PraNet-layout data root the profiles train on.

:func:`prepare_pranet` fetches PraNet's own train and test archives (Kvasir-SEG + CVC-ClinicDB
training frames, five test sets: the split the paper's numbers use) from Google Drive
(:mod:`kdas_utils.data.gdrive`) and unpacks them as the root. Kvasir-SEG alone has a stable
address (:func:`~kdas_utils.data.download_dataset`), and :func:`prepare_kvasir_seg` turns it into
a root that the ``standard``, ``colab`` and ``paper`` profiles accept::

    <root>/TrainDataset/{images,masks}/        900 frames
    <root>/TestDataset/Kvasir/{images,masks}/  100 frames

The 900/100 split has PraNet's sizes but is *not* PraNet's list of files: it is a seeded
random split, recorded in ``<root>/split.json``. Numbers measured on it are comparable with
each other, not with the paper's Kvasir column. Masks (JPEG in the release) are binarised as
:func:`~kdas_utils.data.read_mask` does and written as PNG, so reading them later needs no repair.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from .download import UnsafeArchiveError, download_dataset, extract_archive
from .gdrive import DRIVE_FILES, Fetch, check_archive, fetch_drive_file
from .pairs import DatasetError, find_dataset, find_kvasir_seg_pairs, read_mask

SPLIT_FILE = "split.json"
PRANET_RECORD = "pranet.json"
# The archives of PraNet's split and the folder each one holds (PraNet's README, section 3.1).
PRANET_ARCHIVES = {"pranet-train": "TrainDataset", "pranet-test": "TestDataset"}


def _require_empty(root: Path) -> None:
    """The layout is written only into a new or empty folder: nothing of the user's is mixed in."""
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} exists and is not empty; choose an empty or new folder for the PraNet layout")


def kvasir_seg_to_pranet(release: str | Path, root: str | Path, test_count: int = 100, seed: int = 0) -> Path:
    """Arrange the Kvasir-SEG release under ``release`` as a PraNet-layout ``root``; return it.

    The folder is written beside ``root`` and renamed into place when complete, so an
    interrupted call leaves no half-filled root. A root this function already wrote with the
    same split is returned as it is; any other non-empty ``root`` is refused.

    Raises:
        DatasetError: no release under ``release``, too few frames, or a non-empty root.
    """
    root = Path(root).expanduser()
    split = {"source": "Kvasir-SEG", "seed": seed, "test_count": test_count}
    record = root / SPLIT_FILE
    if (root / "TrainDataset").exists():
        if record.is_file() and {k: v for k, v in json.loads(record.read_text()).items() if k in split} == split:
            return root
        raise DatasetError(
            f"{root}/TrainDataset already exists and was not written by kvasir_seg_to_pranet with "
            f"{split}; choose another root or move it away"
        )
    _require_empty(root)
    pairs = find_kvasir_seg_pairs(release)
    if len(pairs) <= test_count:
        raise DatasetError(f"{release}: {len(pairs)} Kvasir-SEG frames, too few for a test split of {test_count}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    test = {int(i) for i in order[:test_count]}
    staging = root.with_name(f".{root.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    for index, (image, mask) in enumerate(pairs):
        split_dir = staging / ("TestDataset/Kvasir" if index in test else "TrainDataset")
        (split_dir / "images").mkdir(parents=True, exist_ok=True)
        (split_dir / "masks").mkdir(parents=True, exist_ok=True)
        shutil.copy2(image, split_dir / "images" / image.name)
        Image.fromarray(read_mask(mask) * 255).save(split_dir / "masks" / f"{mask.stem}.png")
    split |= {
        "train": len(pairs) - test_count,
        "test": sorted(pairs[i][0].name for i in test),
        "note": "a seeded random split with PraNet's sizes, not PraNet's file list",
    }
    (staging / SPLIT_FILE).write_text(json.dumps(split, indent=1))
    if root.exists():
        root.rmdir()  # empty, checked above
    staging.rename(root)
    return root


def prepare_kvasir_seg(
    data_dir: str | Path,
    root: str | Path | None = None,
    allow_unpinned: bool = False,
    url: str | None = None,
    progress: bool = True,
    test_count: int = 100,
) -> Path:
    """Download Kvasir-SEG into ``data_dir`` (see :func:`~kdas_utils.data.download_dataset`)
    and arrange it as the PraNet-layout ``root`` (default ``data_dir/polyp``, the series'
    default ``KDAS_DATA_ROOT``); return ``root``."""
    data_dir = Path(data_dir).expanduser()
    release = download_dataset("kvasir-seg", data_dir, allow_unpinned=allow_unpinned, url=url, progress=progress)
    return kvasir_seg_to_pranet(release, root if root is not None else data_dir / "polyp", test_count=test_count)


def _unpacked_folder(unpacked: Path, name: str) -> Path:
    """The folder called ``name`` inside an unpacked archive (the shallowest, at most two levels
    down; macOS's ``__MACOSX`` copies ignored), else the unpacked folder itself (an archive that
    holds ``images/``, ``masks/`` or the test sets at its top)."""
    found = [
        p
        for p in unpacked.rglob(name)
        if p.is_dir() and "__MACOSX" not in p.parts and len(p.relative_to(unpacked).parts) <= 3
    ]
    return min(found, key=lambda p: len(p.parts)) if found else unpacked


def prepare_pranet(data_dir: str | Path, root: str | Path | None = None, fetch: Fetch | None = None) -> Path:
    """Fetch PraNet's ``TrainDataset`` and ``TestDataset`` archives (Google Drive, linked from the
    PraNet and Polyp-PVT READMEs) into ``data_dir/downloads`` and unpack them as the PraNet-layout
    ``root`` (default ``data_dir/polyp``, the series' default ``KDAS_DATA_ROOT``); return ``root``.

    Each archive is checked whole before use, its sha256 recorded beside it on the first download and
    verified on later ones (:func:`~kdas_utils.data.gdrive.fetch_drive_file`), and unpacked only if no
    member escapes its folder (:func:`~kdas_utils.data.extract_archive`). The root is assembled beside
    ``root``, every pair is checked (:func:`~kdas_utils.data.find_dataset`), and it is renamed into
    place only when complete, with ``pranet.json`` recording the archives' checksums. A root this
    function wrote is returned as it is; any other non-empty ``root`` is refused.

    Args:
        fetch: how the archives arrive (default ``gdown`` from Google Drive;
            :func:`~kdas_utils.data.gdrive.mirror_fetch` for a mirror).

    Raises:
        DriveDownloadError: Drive refused (its message says where to put the archives by hand).
        DownloadError: a corrupt archive (removed, nothing kept); UnsafeArchiveError: a member would
            escape its folder (the archive is removed, nothing unpacked).
        DatasetError: ``root`` holds other data, or the unpacked frames are not a PraNet layout.
    """
    data_dir = Path(data_dir).expanduser()
    root = Path(root).expanduser() if root is not None else data_dir / "polyp"
    if (root / "TrainDataset").exists():
        if (root / PRANET_RECORD).is_file():
            return root
        raise DatasetError(
            f"{root}/TrainDataset already exists and was not unpacked by prepare_pranet (Kvasir-SEG alone, "
            f"or your own data?); move it away, or give another root (KDAS_DATA_ROOT)"
        )
    _require_empty(root)
    archives = {
        key: fetch_drive_file(
            DRIVE_FILES[key], data_dir / "downloads" / DRIVE_FILES[key].filename, fetch, check=check_archive
        )
        for key in PRANET_ARCHIVES
    }
    staging = root.with_name(f".{root.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        for key, folder in PRANET_ARCHIVES.items():
            unpacked = staging / f".{key}"
            try:
                extract_archive(archives[key], unpacked)
            except UnsafeArchiveError:
                for path in (archives[key], archives[key].with_name(archives[key].name + ".sha256")):
                    path.unlink(missing_ok=True)  # unusable: the next run fetches it again
                raise
            _unpacked_folder(unpacked, folder).rename(staging / folder)
            if unpacked.exists():
                shutil.rmtree(unpacked)
        found = find_dataset(staging)
        record = {
            "source": "PraNet's split (Google Drive)",
            "archives": {
                archives[key].name: archives[key].with_name(archives[key].name + ".sha256").read_text().split()[0]
                for key in PRANET_ARCHIVES
            },
            "train": len(found["train"]),
            "test": {name: len(pairs) for name, pairs in found["test"].items()},
        }
        (staging / PRANET_RECORD).write_text(json.dumps(record, indent=1))
        if root.exists():
            root.rmdir()  # empty, checked above
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root
