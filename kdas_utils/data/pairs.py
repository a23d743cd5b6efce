"""Finding image/mask pairs on disk and reading them safely.

Two layouts are understood:

* the **PraNet layout** used by PraNet, Polyp-PVT and KDAS::

      root/TrainDataset/{images,masks}/
      root/TestDataset/<name>/{images,masks}/      e.g. Kvasir, CVC-ClinicDB, ...

  (``image``/``mask`` singular folders are accepted too);
* the **Kvasir-SEG release layout**: ``kvasir-seg.zip`` unpacks to
  ``Kvasir-SEG/{images,masks}/*.jpg`` (JPEG masks, so they are not exactly binary).

Pairs are matched by file stem (``cju0qkwl35piu0993l0dewei2.jpg`` with
``cju0qkwl35piu0993l0dewei2.png``). Nothing is dropped silently: every problem raises a
:class:`DatasetError` naming the file and what to do, except non-binary masks, which are
binarised at 128 with one warning that counts them.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import KDASError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
IMAGE_DIR_NAMES = ("images", "image")
MASK_DIR_NAMES = ("masks", "mask")
# Files that operating systems leave behind; they are not samples.
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
MASK_THRESHOLD = 128  # a mask pixel >= 128 (of 255) is polyp

Pair = tuple[Path, Path]


class DatasetError(KDASError, ValueError):
    """A dataset folder or file cannot be used; the message names it and says what to do."""


class NonBinaryMaskWarning(UserWarning):
    """Some masks hold values other than 0 and 255; they were binarised at 128."""


# --------------------------------------------------------------------------- folders


def _find_subdir(split_dir: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (split_dir / name).is_dir():
            return split_dir / name
    return None


def _list_images(folder: Path) -> dict[str, Path]:
    """Map stem -> file for every image in ``folder``; raise on anything unexpected."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.lower() in IGNORED_NAMES:
            continue
        if path.is_dir():
            raise DatasetError(
                f"{path}: unexpected folder inside {folder.name}/; a split folder holds "
                f"images directly. Move its files up or remove it."
            )
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(
                f"{path}: not an image file (suffix {path.suffix or 'missing'}); "
                f"accepted: {', '.join(IMAGE_SUFFIXES)}. Convert it or move it out of {folder}."
            )
        if path.stem in files:
            raise DatasetError(
                f"{path} and {files[path.stem]} share the stem {path.stem!r}, so their mask "
                f"cannot be told apart; keep one of them."
            )
        files[path.stem] = path
    return files


def _describe_unmatched(kind: str, paths: list[Path], other_dir: Path) -> str:
    """E.g. '2 images have no mask of the same stem in masks/: a.jpg, b.jpg'."""
    noun, verb = (kind, "has") if len(paths) == 1 else (kind + "s", "have")
    missing = "mask" if kind == "image" else "image"
    shown = ", ".join(str(p) for p in paths[:5])
    more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
    return f"{len(paths)} {noun} {verb} no {missing} of the same stem in {other_dir}: {shown}{more}"


def find_pairs(split_dir: str | Path, verify: bool = True) -> list[Pair]:
    """The sorted ``(image_path, mask_path)`` pairs of one split folder.

    Args:
        split_dir: a folder holding ``images/`` (or ``image/``) and ``masks/`` (or ``mask/``),
            e.g. ``data/polyp/TrainDataset`` or ``data/polyp/TestDataset/Kvasir``.
        verify: also decode every file once, to catch truncated or corrupt files and
            image/mask size mismatches now rather than in the middle of training, and to
            count non-binary masks (one :class:`NonBinaryMaskWarning`).

    Returns:
        Pairs sorted by stem.

    Raises:
        DatasetError: naming the offending file or folder, for a missing folder, a wrong
            layout, an empty folder, an image without mask or mask without image, a
            non-image file, a corrupt or truncated file, or an image/mask size mismatch.
    """
    split_dir = Path(split_dir).expanduser()
    if not split_dir.is_dir():
        raise DatasetError(
            f"{split_dir}: folder not found. Set KDAS_DATA_ROOT to your data, or create "
            f"the synthetic set with kdas_utils.data.make_synthetic()."
        )
    image_dir = _find_subdir(split_dir, IMAGE_DIR_NAMES)
    mask_dir = _find_subdir(split_dir, MASK_DIR_NAMES)
    if image_dir is None or mask_dir is None:
        found = sorted(p.name for p in split_dir.iterdir() if not p.name.startswith("."))
        hint = ""
        if {"TrainDataset", "TestDataset"} & set(found):
            hint = f" This looks like a dataset root: pass {split_dir / 'TrainDataset'} instead."
        elif "Kvasir-SEG" in found:
            hint = " This looks like the Kvasir-SEG release: use find_kvasir_seg_pairs()."
        raise DatasetError(
            f"{split_dir}: wrong layout. A split folder must hold 'images/' (or 'image/') and "
            f"'masks/' (or 'mask/'); found {found or 'nothing'}.{hint}"
        )
    images = _list_images(image_dir)
    masks = _list_images(mask_dir)
    if not images and not masks:
        raise DatasetError(
            f"{split_dir}: {image_dir.name}/ and {mask_dir.name}/ are empty; copy the frames "
            f"and masks there (see the README, section Data)."
        )
    no_mask = [images[s] for s in sorted(images.keys() - masks.keys())]
    if no_mask:
        raise DatasetError(
            _describe_unmatched("image", no_mask, mask_dir) + ". Add the missing masks or move these images out."
        )
    no_image = [masks[s] for s in sorted(masks.keys() - images.keys())]
    if no_image:
        raise DatasetError(
            _describe_unmatched("mask", no_image, image_dir) + ". Add the missing images or move these masks out."
        )
    pairs = [(images[s], masks[s]) for s in sorted(images)]
    if verify:
        verify_pairs(pairs)
    return pairs


def find_kvasir_seg_pairs(root: str | Path, verify: bool = True) -> list[Pair]:
    """Pairs of the raw Kvasir-SEG release (``kvasir-seg.zip`` unpacked under ``root``).

    ``root`` may be the ``Kvasir-SEG`` folder itself or any folder up to two levels above
    it. Its masks are JPEG files, so they are binarised at 128 (with a warning counting
    the masks that were not exactly binary).
    """
    root = Path(root).expanduser()
    candidates = [root, *sorted(root.glob("*")), *sorted(root.glob("*/*"))] if root.is_dir() else []
    for folder in candidates:
        if folder.is_dir() and _find_subdir(folder, IMAGE_DIR_NAMES) and _find_subdir(folder, MASK_DIR_NAMES):
            return find_pairs(folder, verify=verify)
    raise DatasetError(
        f"{root}: no Kvasir-SEG release found (a 'Kvasir-SEG' folder with images/ and masks/ "
        f"at most two levels down). Unpack kvasir-seg.zip there, e.g. with "
        f"kdas_utils.data.download_dataset('kvasir-seg', ...)."
    )


def find_test_sets(root: str | Path) -> dict[str, Path]:
    """``{name: split_dir}`` for every test set under ``root/TestDataset``, sorted by name."""
    test_root = Path(root).expanduser() / "TestDataset"
    if not test_root.is_dir():
        raise DatasetError(
            f"{test_root}: folder not found; a PraNet-layout root holds TestDataset/<name>/"
            f"{{images,masks}}. Check KDAS_DATA_ROOT."
        )
    sets = {p.name: p for p in sorted(test_root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if not sets:
        raise DatasetError(f"{test_root}: holds no test set folders; expected e.g. TestDataset/Kvasir/.")
    return sets


def find_test_roots(roots, taken: dict[str, Path] | None = None) -> dict[str, Path]:
    """``{name: split_dir}`` of the test sets under further test roots, in order. Each root is a
    PraNet-layout folder (holding ``TestDataset/``) or a ``TestDataset/`` folder itself. ``taken``:
    the sets found already (the data root's); a name in two places is refused, naming both.

    Raises:
        DatasetError: a root that does not exist, holds no test set, or repeats a set's name.
    """
    sets, taken = {}, dict(taken or {})
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(
                f"{root}: test root not found; give a folder that holds TestDataset/<name>/{{images,masks}} "
                f"(KDAS_TEST_ROOTS, --test-root)"
            )
        parent = root if (root / "TestDataset").is_dir() else None
        if parent is None:
            found = {p.name: p for p in sorted(root.iterdir()) if (p / "images").is_dir() or (p / "masks").is_dir()}
            if not found:
                raise DatasetError(
                    f"{root}: not a test root: no TestDataset/ folder and no <name>/images, <name>/masks inside it "
                    f"(KDAS_TEST_ROOTS, --test-root)"
                )
        else:
            found = find_test_sets(parent)
        for name, folder in found.items():
            if name in taken:
                raise DatasetError(f"test set {name!r} is both in {taken[name]} and in {folder}; name each set once")
            taken[name] = sets[name] = folder
    return sets


def find_dataset(root: str | Path, verify: bool = True) -> dict:
    """All pairs of a PraNet-layout root: ``{"train": pairs, "test": {name: pairs}}``."""
    root = Path(root).expanduser()
    return {
        "train": find_pairs(root / "TrainDataset", verify=verify),
        "test": {name: find_pairs(d, verify=verify) for name, d in find_test_sets(root).items()},
    }


# --------------------------------------------------------------------------- files


@contextmanager
def _decoding(path: Path):
    """Turn any decoder failure inside the block into a :class:`DatasetError` naming ``path``."""
    try:
        yield
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetError(
            f"{path}: cannot be decoded ({error}); the file is truncated or corrupt. "
            f"Download or export it again, or move the pair out of the dataset."
        ) from error


def _open(path: Path) -> Image.Image:
    """The decoded image; the file is closed before returning."""
    with _decoding(path), Image.open(path) as image:
        image.load()
        # load() decodes the pixels; a copy detaches them from the (closing) file.
        return image.copy()


def read_image(path: str | Path) -> np.ndarray:
    """An RGB frame as ``(H, W, 3) uint8``.

    Grayscale, palette, 16-bit and RGBA files are converted (alpha is dropped: endoscopy
    frames carry no transparency).
    """
    path = Path(path)
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.round(array / max(array.max(), 1) * 255).astype(np.uint8))
    return np.asarray(image.convert("RGB"))


def _mask_values(path: Path) -> np.ndarray:
    """The mask on a 0-255 scale as ``(H, W) uint8``, before binarisation."""
    image = _open(path)
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * 255
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max()
        # 16-bit masks come as {0, 65535}, {0, 255} or {0, 1}; bring them to 0-255.
        scale = 255.0 / 65535.0 if peak > 255 else 1.0
        array = array * scale
    elif image.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
        # Coloured masks (e.g. red polyp on black): the brightest channel carries the label.
        array = np.asarray(image.convert("RGB")).max(axis=2)
    else:
        array = np.asarray(image.convert("L"))
    array = np.asarray(array, dtype=np.float64)
    if array.size and array.max() == 1:  # label masks {0, 1}
        array = array * 255
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


def read_mask(path: str | Path, return_binary_flag: bool = False):
    """A mask as ``(H, W) uint8`` with values {0, 1} (1 = polyp).

    8-bit {0, 255}, label {0, 1}, 16-bit, 1-bit and coloured masks are understood; any
    other value is binarised at 128 on the 0-255 scale.

    Args:
        return_binary_flag: also return whether the file was already exactly binary.
    """
    values = _mask_values(Path(path))
    binary = (values >= MASK_THRESHOLD).astype(np.uint8)
    if return_binary_flag:
        was_binary = bool(np.isin(values, (0, 255)).all())
        return binary, was_binary
    return binary


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) after a full decode; JPEGs decode at 1/8 scale (DCT draft mode),
    which still reads every byte, so truncation is caught at a fraction of the cost."""
    with _decoding(path), Image.open(path) as image:
        size = image.size
        if image.format == "JPEG":
            image.draft("RGB", (max(size[0] // 8, 1), max(size[1] // 8, 1)))
        image.load()
        return size


def _check_pair(pair: Pair) -> bool:
    image_path, mask_path = pair
    image_size = _image_size(image_path)
    mask, was_binary = read_mask(mask_path, return_binary_flag=True)
    mask_size = (mask.shape[1], mask.shape[0])
    if image_size != mask_size:
        raise DatasetError(
            f"{mask_path}: mask is {mask_size[0]}x{mask_size[1]} but its image {image_path.name} "
            f"is {image_size[0]}x{image_size[1]}; a mask must have its image's size. "
            f"Re-export the mask at the image's size."
        )
    return was_binary


def verify_pairs(pairs: list[Pair], workers: int = 4) -> int:
    """Decode every pair once; raise :class:`DatasetError` on the first bad file.

    Returns:
        The number of masks that were not exactly binary (a :class:`NonBinaryMaskWarning`
        is issued when it is not zero).
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        flags = list(pool.map(_check_pair, pairs))
    non_binary = [pair[1] for pair, ok in zip(pairs, flags) if not ok]
    if non_binary:
        warnings.warn(
            f"{len(non_binary)} of {len(pairs)} masks under {non_binary[0].parent} are not "
            f"binary (first: {non_binary[0].name}); they are binarised at {MASK_THRESHOLD} "
            f"(value >= {MASK_THRESHOLD} is polyp).",
            NonBinaryMaskWarning,
            stacklevel=3,
        )
    return len(non_binary)
