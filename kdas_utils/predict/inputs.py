"""What ``kdas predict`` reads and where its outputs go: the image and video files of its inputs, each
with a name for its outputs that no other input takes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .predictor import PredictInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
CSV_NAME = "predictions.csv"
OVERLAYS = "overlays"


@dataclass(frozen=True)
class Source:
    """One source to predict on: an image, a video file or a live stream, the input argument it came
    from, and the name its outputs take (:func:`outputs_of`)."""

    path: Path
    kind: str  # "image" | "video" | "stream"
    given: str
    name: str


@dataclass
class Inputs:
    """What :func:`collect_inputs` found: the sources, and the files of the folders that are neither."""

    sources: list[Source]
    ignored: list[Path] = field(default_factory=list)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def collect_inputs(inputs: Iterable[str | Path]) -> Inputs:
    """The image and video files of ``inputs`` (files, and folders searched recursively, sorted), with
    output names that do not collide.

    An image ``a/b.jpg`` is named ``b``; a frame ``sub/c.png`` of a folder is named ``sub__c``. Where two
    sources would take one name, the file's suffix is added (``b_jpg``), then the input's own name.

    Raises:
        PredictInputError: an input is missing, is a file of another kind, or a folder holds no image
            or video.
    """
    found: list[tuple[Path, str, str, Path]] = []  # (path, kind, given, path relative to its input)
    ignored: list[Path] = []
    kinds = ", ".join(s.lstrip(".").upper() for s in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    for given in map(str, inputs):
        path = Path(given).expanduser()
        if path.is_dir():
            files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
            usable = [p for p in files if _kind(p)]
            ignored += [p for p in files if not _kind(p)]
            if not usable:
                raise PredictInputError(f"{given}: the folder holds no image or video file ({kinds})")
            found += [(p, _kind(p), given, p.relative_to(path)) for p in usable]
        elif path.is_file():
            if _kind(path) is None:
                raise PredictInputError(f"{given}: not an image or a video file (expected one of {kinds})")
            found.append((path, _kind(path), given, Path(path.name)))
        else:
            raise PredictInputError(f"{given}: no such file or folder")
    unique, seen = [], set()
    for item in found:  # the same file reached twice (given twice, or a file and its folder) is predicted once
        key = item[0].resolve()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return Inputs(_name_sources(unique), ignored)


def _name_sources(found: list[tuple[Path, str, str, Path]]) -> list[Source]:
    def plain(item):
        return "__".join(item[3].with_suffix("").parts)

    def with_suffix(item):
        return plain(item) + "_" + item[3].suffix.lower().lstrip(".")

    def with_input(item):
        return Path(item[2]).name + "__" + with_suffix(item)

    names = [plain(item) for item in found]
    for rename in (with_suffix, with_input):
        taken: dict[str, int] = {}
        for name in names:
            taken[name] = taken.get(name, 0) + 1
        names = [
            rename(item) if taken[name] > 1 or name in (OVERLAYS, Path(CSV_NAME).stem) else name
            for item, name in zip(found, names)
        ]
    if len(set(names)) < len(names):
        raise PredictInputError("two inputs would write the same outputs; give them to separate --out folders")
    return [Source(path, kind, given, name) for (path, kind, given, _), name in zip(found, names)]


@dataclass(frozen=True)
class Outputs:
    """Where one source's outputs go under ``out``.

    An image: ``mask`` (``<name>.png``) and ``overlay`` (``overlays/<name>.png``). A video or a stream:
    ``overlay`` (``<name>_overlay.mp4``), ``mask`` (``<name>_masks.mov``, every frame's mask in one
    lossless video) and, with ``--save-frames``, ``frames`` (``<name>/``: each frame's mask and overlay
    as PNGs)."""

    mask: Path
    overlay: Path
    frames: Path | None = None

    def frame_pngs(self, index: int) -> tuple[Path, Path]:
        """``(mask, overlay)`` PNGs of a video's frame ``index`` under :attr:`frames`."""
        return self.frames / f"{index:06d}.png", self.frames / OVERLAYS / f"{index:06d}.png"


def outputs_of(source: Source, out: Path, save_frames: bool = False) -> Outputs:
    """The :class:`Outputs` of ``source`` under ``out``."""
    if source.kind == "image":
        return Outputs(out / f"{source.name}.png", out / OVERLAYS / f"{source.name}.png")
    frames = out / source.name if save_frames else None
    return Outputs(out / f"{source.name}_masks.mov", out / f"{source.name}_overlay.mp4", frames)


def planned_outputs(sources: list[Source], out: Path, save_frames: bool = False) -> list[Path]:
    """The files and folders that predicting ``sources`` into ``out`` creates (checked before any work)."""
    paths = [out / CSV_NAME]
    for source in sources:
        where = outputs_of(source, out, save_frames)
        paths += [where.mask, where.overlay] + ([where.frames] if where.frames else [])
    return paths


def check_out(out: Path, sources: list[Source], overwrite: bool, save_frames: bool = False) -> None:
    """Refuse an ``out`` that is a file, and outputs that exist unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise PredictInputError(f"--out {out} is a file; give a folder (it is created if missing)")
    if overwrite:
        return
    existing = [path for path in planned_outputs(sources, out, save_frames) if path.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise PredictInputError(
            f"{existing[0]}{more} exist already; pass --resume to continue a run that stopped, --overwrite to "
            f"start again, or choose another --out"
        )


def stream_source(url: str, name: str | None = None) -> Source:
    """A live source (a camera device or a network stream) as a :class:`Source` of kind ``stream``,
    named ``name`` or after the address's last part (``rtsp://host/live`` -> ``live``)."""
    stem = name or Path(url.rstrip("/").split("?")[0]).stem or "stream"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "stream"
    return Source(Path(url), "stream", url, stem)
