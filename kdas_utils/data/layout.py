"""From the raw Kvasir-SEG release to a PraNet-layout data root the profiles train on.

PraNet's own train/test archives (Kvasir-SEG + CVC-ClinicDB, five test sets) live on Google
Drive, which has no stable direct address. Kvasir-SEG alone is downloadable
(:func:`~kdas_utils.data.download_dataset`), so this module turns it into a root that the
``standard`` and ``paper`` profiles accept::

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

from .download import download_dataset
from .pairs import DatasetError, find_kvasir_seg_pairs, read_mask

SPLIT_FILE = "split.json"


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
        raise DatasetError(f"{root}/TrainDataset already exists and was not written by kvasir_seg_to_pranet with "
                           f"{split}; choose another root or move it away")
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} exists and is not empty; choose an empty or new folder for the PraNet layout")
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
    split |= {"train": len(pairs) - test_count, "test": sorted(pairs[i][0].name for i in test),
              "note": "a seeded random split with PraNet's sizes, not PraNet's file list"}
    (staging / SPLIT_FILE).write_text(json.dumps(split, indent=1))
    if root.exists():
        root.rmdir()  # empty, checked above
    staging.rename(root)
    return root


def prepare_kvasir_seg(data_dir: str | Path, root: str | Path | None = None, allow_unpinned: bool = False,
                       url: str | None = None, progress: bool = True, test_count: int = 100) -> Path:
    """Download Kvasir-SEG into ``data_dir`` (see :func:`~kdas_utils.data.download_dataset`)
    and arrange it as the PraNet-layout ``root`` (default ``data_dir/polyp``, the series'
    default ``KDAS_DATA_ROOT``); return ``root``."""
    data_dir = Path(data_dir).expanduser()
    release = download_dataset("kvasir-seg", data_dir, allow_unpinned=allow_unpinned, url=url, progress=progress)
    return kvasir_seg_to_pranet(release, root if root is not None else data_dir / "polyp", test_count=test_count)
