"""Data: files -> pairs -> dataset/transforms.

The names most notebooks need are re-exported here::

    from kdas_utils.data import find_pairs, make_synthetic, PolypDataset, train_transforms
"""

from .catalog import DOMAINS, PAPER_DATASETS, SEEN_TEST_SETS, UNSEEN_TEST_SETS, against_pranet, domain
from .dataset import PolypDataset, train_val_split
from .download import SOURCES, DownloadError, UnsafeArchiveError, download, download_dataset, extract_archive
from .gdrive import DRIVE_FILES, DriveDownloadError, fetch_drive_file, mirror_fetch
from .layout import kvasir_seg_to_pranet, prepare_kvasir_seg, prepare_pranet
from .pairs import (
    DatasetError,
    NonBinaryMaskWarning,
    find_dataset,
    find_kvasir_seg_pairs,
    find_pairs,
    find_test_roots,
    find_test_sets,
    read_image,
    read_mask,
    verify_pairs,
)
from .partial import PartialLabels, is_labelled, labelled_indices
from .synthetic import make_synthetic, render_frame
from .transforms import denormalize, eval_transforms, train_transforms

__all__ = [
    "DOMAINS",
    "against_pranet",
    "DRIVE_FILES",
    "PAPER_DATASETS",
    "DatasetError",
    "DownloadError",
    "DriveDownloadError",
    "NonBinaryMaskWarning",
    "PartialLabels",
    "PolypDataset",
    "SEEN_TEST_SETS",
    "SOURCES",
    "UNSEEN_TEST_SETS",
    "UnsafeArchiveError",
    "denormalize",
    "domain",
    "download",
    "download_dataset",
    "eval_transforms",
    "extract_archive",
    "fetch_drive_file",
    "find_dataset",
    "find_kvasir_seg_pairs",
    "find_pairs",
    "find_test_roots",
    "find_test_sets",
    "is_labelled",
    "kvasir_seg_to_pranet",
    "labelled_indices",
    "make_synthetic",
    "mirror_fetch",
    "prepare_kvasir_seg",
    "prepare_pranet",
    "read_image",
    "read_mask",
    "render_frame",
    "train_transforms",
    "train_val_split",
    "verify_pairs",
]
