"""``kdas predict``: a trained network on image files, folders, videos and live streams.

:func:`predict_inputs` writes into its ``out`` folder, for each

- image: the binary mask (``<name>.png``, 0 / 255, the frame's size) and an overlay (``overlays/<name>.png``,
  the mask tinted and outlined on the frame);
- video or stream: the overlay video (``<name>_overlay.mp4``, by default its longest side 640 px) and every
  frame's mask, at the frame's own size, in one lossless video (``<name>_masks.mov``;
  :func:`~kdas_utils.predict.writers.read_masks` reads it back); with ``save_frames``, also each frame's mask
  and overlay as PNGs under ``<name>/`` (at the frame's size);

and ``predictions.csv``: one row per image and per video frame (input, file, frame, time stamp, size,
polyp found, area fraction, max probability, bounding box, mask file, and for a stream the latency from
decoding to writing), and one per file that could not be read, with the reason.

Rows are written as frames finish, so a run stopped part-way (Ctrl-C, a crash, the machine) leaves the
rows of the frames done, and videos that play up to the last second written; Ctrl-C also writes a row
that says where the video stopped. ``resume=True`` (``kdas predict ... --resume``) continues such a run:
finished images are kept, a video's frames done are taken from its mask video without the network, and
the network starts at the first frame that has no row.
"""

from __future__ import annotations

import csv
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..environment import progress_bars
from ..files import atomic_path
from ..plots import overlay
from .inputs import CSV_NAME, Source, check_out, collect_inputs, outputs_of
from .predictor import PredictInputError, Prediction, Predictor, read_rgb
from .stream import CPU_PARTS, LATENCIES_KEPT, Frame, Pipeline, PipelineReport, VideoReader, count_frames
from .writers import OVERLAY_SIZE, MaskVideo, OverlayVideo, read_masks

CSV_COLUMNS = (
    "input",
    "file",
    "frame",
    "time_s",
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
    "latency_ms",
    "error",
)

# What a video that stops decoding part-way raises: its frames so far are kept, the rest reported.
VIDEO_ERRORS = (av.FFmpegError, PredictInputError, OSError, ValueError)


@dataclass
class PredictReport:
    """What :func:`predict_inputs` did: frames predicted (by the network in this run), frames taken over
    from an earlier run (``resumed``), files skipped (path, reason), the CSV, the videos written, timings,
    and for streams the frames dropped and each frame's latency."""

    frames: int = 0
    resumed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    csv: Path | None = None
    seconds: float = 0.0
    network_seconds: float = 0.0
    dropped: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    cpu_seconds: dict = field(default_factory=lambda: dict.fromkeys(CPU_PARTS, 0.0))

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def add(self, run: PipelineReport) -> None:
        self.frames += run.frames
        self.network_seconds += run.network_seconds
        for part, seconds in run.cpu_seconds.items():
            self.cpu_seconds[part] += seconds
        self.dropped += run.dropped
        self.latencies.extend(run.latencies)


class FrameLog:
    """``predictions.csv``, written a row at a time and flushed, from any thread. With ``resume``, the rows
    of an earlier run are read first (:attr:`earlier`; a row cut short by a crash is left out) and written
    again, so the run continues the same file."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = Path(path)
        self.earlier = read_rows(self.path) if resume else []
        self._lock = threading.Lock()
        self._handle = open(self.path, "w", newline="")  # closed by close()
        self._writer = csv.DictWriter(self._handle, fieldnames=CSV_COLUMNS, restval="")
        self._writer.writeheader()

    def keep(self, rows: list[dict]) -> None:
        """Write rows of the earlier run that stand (images done, a video's frames taken over)."""
        for row in rows:
            self.add(row)

    def add(self, row: dict) -> None:
        with self._lock:
            self._writer.writerow({key: row.get(key, "") for key in CSV_COLUMNS})
            self._handle.flush()

    def close(self) -> Path:
        self._handle.close()
        return self.path


def read_rows(path: Path) -> list[dict]:
    """The rows of a ``predictions.csv`` (none if it is missing); a last row cut short is left out."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row for row in rows if None not in row.values() and None not in row]


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (``.part`` then rename): never a half-written file under ``path``."""
    with atomic_path(path) as partial:
        Image.fromarray(array).save(partial, format="PNG")


@dataclass(frozen=True)
class VideoOptions:
    """How :func:`predict_inputs` runs a video or a stream (its arguments of the same names)."""

    batch_size: int = 8
    progress: bool = False
    log: Callable[[str], None] = print
    save_frames: bool = False
    max_frames: int | None = None
    overlay_size: int | None = OVERLAY_SIZE


def predict_inputs(
    predictor: Predictor,
    inputs: Iterable[str | Path],
    out: str | Path,
    batch_size: int = 8,
    overwrite: bool = False,
    resume: bool = False,
    save_frames: bool = False,
    progress: bool | None = None,
    log=print,
    stream: Source | None = None,
    max_frames: int | None = None,
    overlay_size: int | None = OVERLAY_SIZE,
) -> PredictReport:
    """Predict every frame of ``inputs`` (image files, folders, video files) and of ``stream`` (a live
    source, :func:`~kdas_utils.predict.inputs.stream_source`; at most ``max_frames`` of it) and write the
    outputs the module's text lists into ``out``; a video's overlay video has its longest side
    ``overlay_size`` pixels (never enlarged; ``None`` or 0: the frame's own size).

    A file that cannot be decoded is skipped, named through ``log`` (``None``: silent) and counted in the
    report; the others are processed. Inputs are checked before any work
    (:func:`~kdas_utils.predict.inputs.collect_inputs`, :func:`~kdas_utils.predict.inputs.check_out`), so a
    missing input or an existing output (without ``overwrite`` or ``resume``) stops the run with nothing
    written. ``KeyboardInterrupt`` stops it with every output valid for the frames done, and is raised again.
    """
    log = log or (lambda message: None)
    out = Path(out)
    found = collect_inputs(inputs) if inputs else None
    sources = (found.sources if found else []) + ([stream] if stream else [])
    if not sources:
        raise PredictInputError("nothing to predict: give image or video files, folders, or --stream")
    if not resume:
        check_out(out, sources, overwrite, save_frames)
    out.mkdir(parents=True, exist_ok=True)
    report = PredictReport(ignored=found.ignored if found else [])
    for path in report.ignored:
        log(f"ignored {path}: not an image or a video file")
    progress = progress_bars() if progress is None else progress
    table = FrameLog(out / CSV_NAME, resume=resume)
    start = time.perf_counter()
    try:
        images = [s for s in sources if s.kind == "image"]
        if images:
            _predict_images(predictor, images, out, table, report, batch_size, progress, log)
        video = VideoOptions(batch_size, progress, log, save_frames, max_frames, overlay_size)
        for source in sources:
            if source.kind != "image":
                _predict_video(predictor, source, out, table, report, video)
    finally:
        report.seconds = time.perf_counter() - start
        report.csv = table.close()
    return report


def address(source: Source) -> str:
    """What ``source`` is read from: its file, or a stream's address as given (a URL or a device)."""
    return source.given if source.kind == "stream" else str(source.path)


def _row(source: Source, index, prediction: Prediction, mask: Path, out: Path, **extra) -> dict:
    return {
        "input": source.given,
        "file": address(source),
        "frame": index,
        **prediction.row(),
        "mask": mask.relative_to(out).as_posix(),
        **extra,
    }


def _skip(report: PredictReport, table: FrameLog, log, source: Source, reason: str) -> None:
    report.skipped.append((address(source), reason))
    table.add({"input": source.given, "file": address(source), "frame": "", "error": reason})
    log(f"skipped {reason}")


def _predict_images(predictor, images: list[Source], out: Path, table: FrameLog, report, batch_size, progress, log):
    """The image files, through one :class:`~kdas_utils.predict.stream.Pipeline`; with ``resume``, images whose
    row and mask exist already are kept."""
    done = {
        row["file"]: row
        for row in table.earlier
        if row["frame"] == "0" and not row["error"] and (out / row["mask"]).exists()
    }
    table.keep([done[str(s.path)] for s in images if str(s.path) in done])
    report.resumed += sum(str(s.path) in done for s in images)
    todo = [s for s in images if str(s.path) not in done]
    by_index = dict(enumerate(todo))

    def frames():
        for index, source in by_index.items():
            try:
                yield Frame(index, 0.0, read_rgb(source.path))
            except PredictInputError as error:
                _skip(report, table, log, source, str(error))

    bar = tqdm(total=len(todo), unit="frame", desc="images", disable=not progress)

    def write(frame: Frame, prediction: Prediction) -> None:
        source = by_index[frame.index]
        where = outputs_of(source, out)
        save_png(prediction.mask.astype(np.uint8) * 255, where.mask)
        save_png(overlay(frame.rgb, prediction.mask), where.overlay)
        table.add(_row(source, 0, prediction, where.mask, out))
        bar.update()

    try:
        report.add(Pipeline(predictor, batch_size).run(frames(), write))
    finally:
        bar.close()


def _earlier_frames(table: FrameLog, source: Source) -> list[dict]:
    """The rows an earlier run wrote for ``source``'s frames 0, 1, 2, ... without a gap."""
    rows = {}
    for row in table.earlier:
        if row["input"] == source.given and row["file"] == address(source) and row["frame"] and not row["error"]:
            rows[int(row["frame"])] = row
    kept = []
    for index in itertools.count():
        if index not in rows:
            return kept
        kept.append(rows[index])


def _predict_video(predictor, source: Source, out: Path, table: FrameLog, report, video: VideoOptions):
    """One video file or live stream through a :class:`~kdas_utils.predict.stream.Pipeline` into its overlay
    video, mask video, rows (and frame PNGs with ``video.save_frames``)."""
    log = video.log
    where = outputs_of(source, out, video.save_frames)
    try:
        reader = VideoReader(address(source))
    except VIDEO_ERRORS as error:
        _skip(report, table, log, source, f"{source.path}: no decodable frame ({' '.join(str(error).split())})")
        return
    with reader:
        _predict_frames(predictor, source, reader, where, out, table, report, video)


def _predict_frames(predictor, source, reader, where, out: Path, table, report, video: VideoOptions):
    log, live = video.log, source.kind == "stream"
    frames = reader.frames()
    try:
        first = next(frames)
    except (StopIteration, *VIDEO_ERRORS) as error:
        reason = "the video is empty" if isinstance(error, StopIteration) else " ".join(str(error).split())
        _skip(report, table, log, source, f"{source.path}: no decodable frame ({reason})")
        return
    rate = reader.rate
    earlier = _earlier_frames(table, source)
    previous = {name: path.with_name(path.stem + ".previous" + path.suffix) for name, path in _videos(where).items()}
    done = 0
    if earlier:
        for name, path in _videos(where).items():  # an interrupted resume left the longer files aside already
            if not previous[name].exists() and path.exists():
                os.replace(path, previous[name])
        done = min(len(earlier), count_frames(previous["overlay"]), count_frames(previous["mask"]))
    overlay_video = OverlayVideo(where.overlay, rate, video.overlay_size)
    mask_video = MaskVideo(where.mask, rate)
    bar = tqdm(total=reader.expected or None, unit="frame", desc=source.name, disable=not video.progress)
    last = {"index": -1}

    def write(frame: Frame, prediction: Prediction) -> None:
        overlay_video.write(frame.rgb, prediction.mask, frame.seconds)
        mask_video.write(prediction.mask)
        if where.frames is not None:  # the frame's own size
            mask_png, overlay_png = where.frame_pngs(frame.index)
            save_png(prediction.mask.astype(np.uint8) * 255, mask_png)
            save_png(overlay(frame.rgb, prediction.mask), overlay_png)
        latency = f"{(time.perf_counter() - frame.arrived) * 1000:.1f}" if live else ""
        table.add(
            _row(source, frame.index, prediction, where.mask, out, time_s=f"{frame.seconds:.3f}", latency_ms=latency)
        )
        last["index"] = frame.index
        bar.update()

    remaining = itertools.chain([first], frames)
    if video.max_frames:  # a live source's first frames (fewer are written where frames were dropped)
        remaining = itertools.islice(remaining, video.max_frames)
    try:
        if done:  # frames of the earlier run: their masks, drawn again, without the network
            table.keep(earlier[:done])
            masks = read_masks(previous["mask"])
            for mask, frame in zip(masks, remaining):  # masks first: zip stops without taking a frame
                overlay_video.write(frame.rgb, mask, frame.seconds)
                mask_video.write(mask)
                bar.update()
                if frame.index + 1 >= done:
                    break
            report.resumed += done
            last["index"] = done - 1
            log(f"{source.name}: {done} frame(s) of the earlier run kept, continuing at frame {done}")
        run = Pipeline(predictor, video.batch_size).run(remaining, write, live=live)
        report.add(run)
        if run.dropped:
            log(f"{source.name}: {run.dropped} frame(s) dropped to keep up with the live source")
    except KeyboardInterrupt:
        reason = f"stopped after frame {last['index']} (interrupted); run the same command with --resume to continue"
        table.add({"input": source.given, "file": address(source), "frame": "", "error": reason})
        raise
    except VIDEO_ERRORS as error:
        reason = " ".join(str(error).split())
        _skip(report, table, log, source, f"{source.path}: decoding stopped after frame {last['index']} ({reason})")
    finally:
        bar.close()
        for writer in (overlay_video, mask_video):
            writer.close()
        if last["index"] + 1 >= done:
            for path in previous.values():
                path.unlink(missing_ok=True)
    report.videos.append(where.overlay)


def _videos(where) -> dict[str, Path]:
    """``{"overlay": ..., "mask": ...}``: a video source's two video files."""
    return {"overlay": where.overlay, "mask": where.mask}
