"""Your own frames: a trained network on image files, folders and colonoscopy videos.

    from kdas_utils.predict import Predictor

    predictor = Predictor("runs/checkpoints/student-kdas-s0-standard/best.pt")
    result = predictor.predict("my_frame.jpg")      # a path, a PIL image or an (H, W, 3) uint8 RGB array
    result.mask, result.probability                 # (H, W) bool and float32, at the frame's own size

:func:`predict_inputs` is what ``kdas predict`` runs: it reads every frame of its inputs, predicts in
batches and writes, per frame, the binary mask (PNG, the frame's size) and an overlay (the mask tinted
and outlined on the frame), an overlay video per input video, and one CSV row per frame.

What a prediction is (this series' choice; the released KDAS code has no prediction command): the
frame is resized to the network's input size ``S`` (bilinear, as in evaluation) and ImageNet-normalised,
the network gives ``sigmoid(P1 + P2)`` at ``S x S`` (the ONNX export gives the same), optionally averaged
with the prediction of the horizontally flipped frame flipped back (``tta``), then the probability map
is resized to the frame's size (bilinear) and thresholded (``>= threshold``, 0.5 by default).

Videos are decoded and written with PyAV (FFmpeg's libraries in a wheel from PyPI, no system FFmpeg).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .config import Profile, get_profile
from .data import eval_transforms
from .engine import select_device
from .errors import KDASError
from .export import OnnxPredictor
from .models import load_network
from .plots import overlay
from .runs import StudentRecipe
from .runtime import progress_bars

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
DEFAULT_SIZE = 352  # the paper's input size, for weight files that do not record theirs
CSV_NAME = "predictions.csv"
OVERLAYS = "overlays"
CSV_COLUMNS = (
    "input",
    "file",
    "frame",
    "width",
    "height",
    "polyp",
    "area_fraction",
    "max_probability",
    "x_min",
    "y_min",
    "x_max",
    "y_max",
    "mask",
    "error",
)


class PredictInputError(KDASError):
    """An input of ``kdas predict`` that cannot be used (missing, empty, of an unknown kind), or an
    output that would be overwritten; the message names it."""


# What a video that stops decoding part-way raises: its frames so far are kept, the rest reported.
VIDEO_ERRORS = (av.FFmpegError, PredictInputError, OSError, ValueError)


# --------------------------------------------------------------------------- one frame


@dataclass
class Prediction:
    """The network's answer on one frame, at the frame's own size.

    Attributes:
        probability: ``(H, W)`` float32 in [0, 1].
        mask: ``(H, W)`` bool, ``probability >= threshold``.
    """

    probability: np.ndarray
    mask: np.ndarray

    @property
    def found(self) -> bool:
        """Whether any pixel is called polyp."""
        return bool(self.mask.any())

    @property
    def area_fraction(self) -> float:
        """The share of the frame's pixels called polyp."""
        return float(self.mask.mean())

    @property
    def max_probability(self) -> float:
        return float(self.probability.max())

    @property
    def bbox(self) -> tuple[int, int, int, int] | None:
        """``(x_min, y_min, x_max, y_max)`` of the mask's pixels (inclusive), or ``None`` without polyp."""
        rows, cols = np.nonzero(self.mask)
        if rows.size == 0:
            return None
        return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())

    def row(self) -> dict:
        """The CSV columns that describe the prediction."""
        box = self.bbox or ("", "", "", "")
        height, width = self.mask.shape
        return {
            "width": width,
            "height": height,
            "polyp": int(self.found),
            "area_fraction": f"{self.area_fraction:.6f}",
            "max_probability": f"{self.max_probability:.6f}",
            **dict(zip(("x_min", "y_min", "x_max", "y_max"), box)),
        }


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3) uint8`` RGB (JPEG, PNG, TIFF, BMP; grey or RGBA converted).

    Raises:
        PredictInputError: the file cannot be decoded; the message names it.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise PredictInputError(f"{path}: cannot decode it as an image ({' '.join(str(error).split())})") from error


def as_rgb(image) -> np.ndarray:
    """A path, a PIL image or an ``(H, W, 3)`` / ``(H, W)`` uint8 array as ``(H, W, 3) uint8`` RGB."""
    if isinstance(image, (str, os.PathLike)):
        return read_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise ValueError(
            f"an image of shape {array.shape} and dtype {array.dtype}: give (H, W, 3) uint8 RGB, a PIL image or a path"
        )
    return np.ascontiguousarray(array[..., :3])


# --------------------------------------------------------------------------- the network


class _TorchNetwork:
    """``(B, 3, S, S)`` float32 -> ``(B, S, S)`` probabilities with a PyTorch network."""

    def __init__(self, model: torch.nn.Module, device):
        self.device = select_device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        logits = self.model(torch.from_numpy(images).to(self.device)).logits.float()
        return torch.sigmoid(logits)[:, 0].cpu().numpy()


class _OnnxNetwork:
    """The same with the exported student on onnxruntime (:class:`kdas_utils.export.OnnxPredictor`)."""

    def __init__(self, path: str | Path):
        self.session = OnnxPredictor(path)
        self.image_size = self.session.image_size

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session(images)[:, 0]


def recorded_size(path: str | Path) -> int | None:
    """The input size an engine checkpoint was trained at (``config.image_size``), else ``None``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a Polyp-PVT-format file or not a weight file: load_network says which
        return None
    config = state.get("config") if isinstance(state, dict) else None
    return int(config["image_size"]) if isinstance(config, dict) and config.get("image_size") else None


def default_weights(profile: Profile | None = None) -> Path:
    """The profile's trained KDAS student (seed 0), the weights ``kdas predict`` uses by default.

    Raises:
        PredictInputError: it is not trained yet; the message gives the command.
    """
    profile = profile or get_profile()
    path = StudentRecipe("kdas").folder(profile, 0) / "best.pt"
    if not path.exists():
        raise PredictInputError(
            f"no trained KDAS student of the {profile.name} profile at {path}: train it "
            f"(kdas distill --profile {profile.name}) or pass --weights FILE (an engine checkpoint or a "
            f"Polyp-PVT-format file) or --onnx FILE"
        )
    return path


class Predictor:
    """A trained network, ready for frames of any size.

    Args:
        weights: an engine checkpoint (``best.pt``) or a Polyp-PVT-format file (the official
            ``PolypPVT.pth``, or a student saved the released code's way); ``None`` (and no
            ``onnx``) takes the profile's trained KDAS student (:func:`default_weights`).
        onnx: an ONNX file written by :func:`kdas_utils.export.export_onnx`, run with onnxruntime
            on the CPU instead of PyTorch (its input size is fixed at export).
        profile: the profile whose student is the default.
        size: the network's input size ``S`` (a multiple of 32); default: the size the checkpoint
            was trained at, the ONNX model's, else 352.
        threshold: probabilities at or above it are polyp.
        tta: also predict on the horizontally flipped frame and average the two probability maps.
        device: for PyTorch (``cuda`` | ``mps`` | ``cpu``; default the best available).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        onnx: str | Path | None = None,
        profile: Profile | None = None,
        size: int | None = None,
        threshold: float = 0.5,
        tta: bool = False,
        device=None,
    ):
        if weights is not None and onnx is not None:
            raise PredictInputError("give either weights (PyTorch) or onnx (onnxruntime), not both")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold}: must lie strictly between 0 and 1, e.g. 0.5")
        if onnx is not None:
            if device not in (None, "cpu"):
                raise PredictInputError(f"--onnx runs on the CPU (onnxruntime's CPU provider), not on {device}")
            self.network = _OnnxNetwork(onnx)
            if size not in (None, self.network.image_size):
                raise PredictInputError(
                    f"{onnx} takes {self.network.image_size} px frames (fixed at export); drop --size or export "
                    f"again with kdas export --image-size {size}"
                )
            self.size, self.source = self.network.image_size, f"ONNX model: {onnx}"
        else:
            weights = Path(weights) if weights is not None else default_weights(profile)
            if not weights.is_file():
                raise PredictInputError(f"{weights}: no such weight file")
            model = load_network(weights)
            self.network = _TorchNetwork(model, device)
            self.size = size or recorded_size(weights) or DEFAULT_SIZE
            self.source = getattr(model, "weights_source", str(weights))
        if self.size % 32:
            raise ValueError(f"size={self.size}: must be a multiple of 32, e.g. {DEFAULT_SIZE}")
        self.threshold, self.tta = threshold, tta
        self._transform = eval_transforms(self.size)

    def inputs(self, images: list[np.ndarray]) -> np.ndarray:
        """``(B, 3, S, S)`` float32: the frames resized and normalised as in evaluation."""
        return np.stack([self._transform(image=image)["image"].numpy() for image in images]).astype(np.float32)

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """``(B, S, S)`` float32 probabilities at the network's size (flip-averaged with ``tta``)."""
        batch = self.inputs(images)
        probability = self.network(batch)
        if self.tta:
            flipped = self.network(np.ascontiguousarray(batch[..., ::-1]))
            probability = (probability + flipped[..., ::-1]) / 2
        return probability

    def predict_batch(self, images: Iterable) -> list[Prediction]:
        """One :class:`Prediction` per frame (paths, PIL images or RGB arrays, of any sizes)."""
        frames = [as_rgb(image) for image in images]
        if not frames:
            return []
        results = []
        for frame, probability in zip(frames, self.probabilities(frames)):
            height, width = frame.shape[:2]
            full = F.interpolate(
                torch.from_numpy(np.ascontiguousarray(probability))[None, None],
                size=(height, width),
                mode="bilinear",
                align_corners=False,
            )[0, 0].numpy()
            results.append(Prediction(full, full >= self.threshold))
        return results

    def predict(self, image) -> Prediction:
        """The :class:`Prediction` of one frame (a path, a PIL image or an ``(H, W, 3)`` uint8 array)."""
        return self.predict_batch([image])[0]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Source:
    """One file to predict on: an image or a video, the input argument it came from, and the name
    its outputs take (``<name>.png`` for an image, ``<name>/`` and ``<name>_overlay.mp4`` for a video)."""

    path: Path
    kind: str  # "image" | "video"
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


def planned_outputs(sources: list[Source], out: Path) -> list[Path]:
    """The files and folders that predicting ``sources`` into ``out`` creates (checked before any work)."""
    paths = [out / CSV_NAME]
    for source in sources:
        if source.kind == "image":
            paths += [out / f"{source.name}.png", out / OVERLAYS / f"{source.name}.png"]
        else:
            paths += [out / source.name, out / f"{source.name}_overlay.mp4"]
    return paths


def check_out(out: Path, sources: list[Source], overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, and outputs that exist unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise PredictInputError(f"--out {out} is a file; give a folder (it is created if missing)")
    if overwrite:
        return
    existing = [path for path in planned_outputs(sources, out) if path.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise PredictInputError(f"{existing[0]}{more} exist already; pass --overwrite or choose another --out")


# --------------------------------------------------------------------------- frames in, files out


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise PredictInputError(f"{path}: holds no video stream")
        for frame in container.decode(container.streams.video[0]):
            yield frame.to_ndarray(format="rgb24")


def video_info(path: Path) -> tuple[int, Fraction]:
    """``(frame count or 0 where the container does not say, frame rate)`` of a video file."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return int(stream.frames or 0), Fraction(stream.average_rate or 25)
    except (av.FFmpegError, IndexError):
        return 0, Fraction(25)


class OverlayVideo:
    """An MP4 (H.264, ``yuv420p``) of overlays, written to ``<path>.part`` and renamed when closed, so
    an interrupted run leaves no half-written video under the final name. Odd frame sizes are padded
    by one pixel (H.264 in 4:2:0 needs even sizes)."""

    def __init__(self, path: Path, rate: Fraction):
        self.path, self.rate = path, rate
        self.partial = path.with_name(path.stem + ".part.mp4")
        self._container = self._stream = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        pad = ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0))
        rgb = np.pad(rgb, pad, mode="edge")
        if self._container is None:
            self._container = av.open(str(self.partial), mode="w", format="mp4")
            self._stream = self._container.add_stream("libx264", rate=self.rate)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "yuv420p"
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        if self._container is None:
            return None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self.partial, self.path)
        return self.path


def _save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (``.part`` then rename): never a half-written file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    Image.fromarray(array).save(partial, format="PNG")
    os.replace(partial, path)


@dataclass
class PredictReport:
    """What :func:`predict_inputs` did: frames predicted, files skipped (path, reason), the CSV, timings."""

    frames: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    csv: Path | None = None
    seconds: float = 0.0
    network_seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def predict_inputs(
    predictor: Predictor,
    inputs: Iterable[str | Path],
    out: str | Path,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: bool | None = None,
    log=print,
) -> PredictReport:
    """Predict every frame of ``inputs`` (image files, folders, videos) and write into ``out``:

    - ``<name>.png``: the binary mask (0 / 255) at the frame's size, per image;
    - ``overlays/<name>.png``: the frame with the mask tinted and outlined;
    - ``<video>/<frame:06d>.png`` and ``<video>/overlays/<frame:06d>.png``, and ``<video>_overlay.mp4``;
    - ``predictions.csv``: one row per frame (input, file, frame index, size, polyp found, area
      fraction, max probability, bounding box, mask file), and one per skipped file with its error.

    A file that cannot be decoded is skipped, named through ``log`` (``None``: silent) and counted in the report; the
    others are processed. Inputs are checked before any work (:func:`collect_inputs`,
    :func:`check_out`), so a missing input or an existing output stops the run with nothing written.
    """
    log = log or (lambda message: None)
    out = Path(out)
    found = collect_inputs(inputs)
    check_out(out, found.sources, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    report = PredictReport(ignored=found.ignored)
    for path in found.ignored:
        log(f"ignored {path}: not an image or a video file")
    videos = {s: video_info(s.path) for s in found.sources if s.kind == "video"}  # (frames, rate), read once
    total = sum(1 if s.kind == "image" else videos[s][0] for s in found.sources)
    progress = progress_bars() if progress is None else progress

    bar = tqdm(total=total or None, unit="frame", desc="predict", disable=not progress)
    rows: list[dict] = []
    batch: list[tuple[Source, int, np.ndarray]] = []
    start = time.perf_counter()

    def flush():
        if not batch:
            return
        began = time.perf_counter()
        predictions = predictor.predict_batch([rgb for _, _, rgb in batch])
        report.network_seconds += time.perf_counter() - began
        for (source, index, rgb), prediction in zip(batch, predictions):
            rows.append(_write_frame(out, source, index, rgb, prediction, writers))
        report.frames += len(batch)
        bar.update(len(batch))
        batch.clear()

    writers: dict[Source, OverlayVideo] = {}
    for source in found.sources:
        if source.kind == "image":
            try:
                batch.append((source, 0, read_rgb(source.path)))
            except PredictInputError as error:
                _skip(report, rows, log, source, str(error))
            if len(batch) >= batch_size:
                flush()
            continue
        flush()  # a video's frames go in batches of their own
        writers[source] = OverlayVideo(out / f"{source.name}_overlay.mp4", videos[source][1])
        index = -1
        try:
            for index, rgb in enumerate(_video_frames(source.path)):
                batch.append((source, index, rgb))
                if len(batch) >= batch_size:
                    flush()
        except VIDEO_ERRORS as error:
            flush()
            reason = " ".join(str(error).split())
            if index < 0:
                _skip(report, rows, log, source, f"{source.path}: no decodable frame ({reason})")
            else:
                _skip(report, rows, log, source, f"{source.path}: decoding stopped after frame {index} ({reason})")
        else:
            if index < 0:  # decoded without an error, and without a frame
                _skip(report, rows, log, source, f"{source.path}: no decodable frame (the video is empty)")
        flush()
        video = writers.pop(source).close()
        if video is not None:
            report.videos.append(video)
    flush()
    bar.close()
    report.seconds = time.perf_counter() - start
    report.csv = _write_csv(out / CSV_NAME, rows)
    return report


def _write_frame(out: Path, source: Source, index: int, rgb: np.ndarray, prediction: Prediction, writers) -> dict:
    mask = prediction.mask.astype(np.uint8) * 255
    drawn = overlay(rgb, prediction.mask)
    if source.kind == "image":
        mask_path, overlay_path = out / f"{source.name}.png", out / OVERLAYS / f"{source.name}.png"
    else:
        mask_path = out / source.name / f"{index:06d}.png"
        overlay_path = out / source.name / OVERLAYS / f"{index:06d}.png"
        writers[source].write(drawn)
    _save_png(mask, mask_path)
    _save_png(drawn, overlay_path)
    row = {"input": source.given, "file": str(source.path), "frame": index, **prediction.row()}
    return {**row, "mask": mask_path.relative_to(out).as_posix(), "error": ""}


def _skip(report: PredictReport, rows: list[dict], log, source: Source, reason: str) -> None:
    report.skipped.append((str(source.path), reason))
    rows.append({"input": source.given, "file": str(source.path), "frame": "", "error": reason})
    log(f"skipped {reason}")


def _write_csv(path: Path, rows: list[dict]) -> Path:
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    return path
