"""Videos as streams: frames decoded, predicted in batches and written while the next ones decode.

:class:`Pipeline` runs three stages at once, joined by bounded queues (so memory does not grow with
the video's length):

1. a *reader* thread decodes frames (PyAV) and prepares each network input (resize, normalise);
2. the calling thread gathers the inputs into batches and runs the network, on ONNX Runtime several
   batches side by side, each on one thread (the predictor's ``lanes``, one per core: threads of one
   batch wait for each other after every operation, batches of their own do not);
3. a *writer* thread turns each probability map into the frame's :class:`~.predictor.Prediction`
   and hands it to the caller's ``write`` (encoders, CSV), in the frames' order.

FFmpeg, ONNX Runtime, PyTorch and OpenCV release Python's lock while they compute, so the stages
overlap on several cores. A live source (``live=True``) never waits for the network: when the queue
is full the oldest frame is dropped (and counted), so the overlay follows the camera.

The writers (:class:`OverlayVideo`, :class:`MaskVideo`) write fragmented MP4 / QuickTime files, which stay
readable when the process is stopped part-way.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from ..plots import overlay
from .predictor import PredictInputError, Prediction, Predictor


@dataclass
class Frame:
    """One decoded frame on its way through the :class:`Pipeline`.

    Attributes:
        index: its number in the source, from 0.
        seconds: its time stamp in the source.
        rgb: ``(H, W, 3) uint8``.
        arrived: ``time.perf_counter()`` when it was decoded (for the latency of live sources).
        input: ``(3, S, S)`` float32, the network's input (set by the reader).
    """

    index: int
    seconds: float
    rgb: np.ndarray
    arrived: float = 0.0
    input: np.ndarray | None = None


LATENCIES_KEPT = 10_000  # the latencies of the last frames kept for percentiles: memory stays flat


@dataclass
class PipelineReport:
    """What a :class:`Pipeline` run did: frames written and dropped, seconds in all and in the network,
    each frame's latency (decoded to written; the last :data:`LATENCIES_KEPT`), and whether it was stopped
    before the source ended."""

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    network_seconds: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    stopped: bool = False

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def network_frames_per_second(self) -> float:
        return self.frames / self.network_seconds if self.network_seconds else 0.0


class _End:
    """The end of a queue's items; ``error`` is what stopped its producer, if anything."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


class Pipeline:
    """Decode, predict in batches and write at once (see the module's text).

    Args:
        predictor: the network and its thresholds.
        batch_size: frames per network call.
        depth: how many batches each queue holds (the memory bound: about
            ``(2 * depth + lanes) * batch_size`` frames in flight).
        lanes: batches run side by side (default: the predictor's :attr:`~.predictor.Predictor.lanes`; 1
            runs one batch at a time on all the backend's threads).
    """

    def __init__(self, predictor: Predictor, batch_size: int = 8, depth: int = 2, lanes: int | None = None):
        self.predictor, self.batch_size = predictor, batch_size
        self.depth = max(1, depth)
        self.lanes = max(1, lanes or predictor.lanes)
        self._timing = threading.Lock()

    def run(
        self,
        frames: Iterable[Frame],
        write: Callable[[Frame, Prediction], None],
        live: bool = False,
        stop: threading.Event | None = None,
    ) -> PipelineReport:
        """Predict every frame of ``frames`` and call ``write(frame, prediction)`` for each, in order.

        An error in a stage stops the others and is raised here once everything written so far has been
        handed to ``write``. ``KeyboardInterrupt`` (Ctrl-C) does the same and is raised again afterwards;
        ``stop``, when set from elsewhere, ends the run as if the source had ended (``report.stopped``).
        """
        stop = stop or threading.Event()
        report = PipelineReport()
        inputs: queue.Queue = queue.Queue(maxsize=self.depth * self.batch_size)
        outputs: queue.Queue = queue.Queue(maxsize=self.depth)
        failure: list[BaseException] = []
        reader = threading.Thread(target=self._read, args=(frames, inputs, stop, live, report), daemon=True)
        writer = threading.Thread(target=self._write, args=(outputs, write, stop, report, failure), daemon=True)
        start = time.perf_counter()
        reader.start()
        writer.start()
        interrupted = None
        lanes = ThreadPoolExecutor(self.lanes, thread_name_prefix="kdas-lane") if self.lanes > 1 else None
        try:
            self._predict(inputs, outputs, stop, live, report, lanes)
        except BaseException as error:  # KeyboardInterrupt included: stop the reader, let the writer finish
            interrupted = error
            stop.set()
        finally:
            _put(outputs, _End(), stop=None)
            writer.join()
            if lanes is not None:
                lanes.shutdown(wait=True)
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:  # unblock a reader waiting for room
                    inputs.get_nowait()
            reader.join(timeout=10)
            report.seconds = time.perf_counter() - start
        report.stopped = report.stopped or interrupted is not None or bool(failure)
        if interrupted is not None:
            raise interrupted
        if failure:
            raise failure[0]
        return report

    # ------------------------------------------------------------------ the three stages

    def _read(self, frames, inputs: queue.Queue, stop: threading.Event, live: bool, report: PipelineReport):
        error = None
        try:
            for frame in frames:
                if stop.is_set():
                    report.stopped = True
                    break
                frame.arrived = frame.arrived or time.perf_counter()
                frame.input = self.predictor.prepare(frame.rgb)
                if live and inputs.full():  # a camera does not wait: drop the oldest frame
                    with contextlib.suppress(queue.Empty):
                        inputs.get_nowait()
                        report.dropped += 1
                _put(inputs, frame, stop)
        except BaseException as caught:  # reported by the predicting thread
            error = caught
        _put(inputs, _End(error), stop)

    def _predict(self, inputs: queue.Queue, outputs: queue.Queue, stop: threading.Event, live: bool, report, lanes):
        ended = False
        while not ended:
            first = inputs.get()
            if isinstance(first, _End):
                if first.error is not None:
                    raise first.error
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:  # a live source gives what it has; a file fills the batch
                    item = inputs.get_nowait() if live else inputs.get()
                except queue.Empty:
                    break
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    ended = True
                    break
                batch.append(item)
            stacked = np.stack([frame.input for frame in batch])
            for frame in batch:
                frame.input = None  # the writer needs the frame, not its input
            if lanes is None:
                probabilities = self._network(stacked, report, lane=False)
            else:  # the writer waits for each batch's result in turn: the frames stay in order
                probabilities = lanes.submit(self._network, stacked, report, lane=True)
            if not _put(outputs, (batch, probabilities), stop):
                return

    def _network(self, stacked: np.ndarray, report: PipelineReport, lane: bool) -> np.ndarray:
        """One batch through the network, its seconds added to ``report.network_seconds`` (divided by the
        lanes that ran side by side, so that frames / network seconds is the network's rate)."""
        began = time.perf_counter()
        probabilities = self.predictor.run(stacked, lane=lane)
        with self._timing:
            report.network_seconds += (time.perf_counter() - began) / (self.lanes if lane else 1)
        return probabilities

    def _write(self, outputs: queue.Queue, write, stop: threading.Event, report: PipelineReport, failure: list):
        while True:
            item = outputs.get()
            if isinstance(item, _End):
                return
            if failure:
                continue  # drain, so the predicting thread is never blocked
            try:
                batch, probabilities = item
                if isinstance(probabilities, Future):
                    probabilities = probabilities.result()
                for frame, probability in zip(batch, probabilities):
                    write(frame, self.predictor.finish(frame.rgb, probability))
                    report.frames += 1
                    report.latencies.append(time.perf_counter() - frame.arrived)
            except BaseException as error:
                failure.append(error)
                stop.set()


def _put(target: queue.Queue, item, stop: threading.Event | None) -> bool:
    """Put ``item``, waiting for room unless ``stop`` is set; ``False`` when it was not put."""
    while True:
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop is not None and stop.is_set():
                return False


# --------------------------------------------------------------------------- sources


class VideoReader:
    """A video file or a live stream opened with PyAV (anything FFmpeg opens: a file, ``rtsp://``,
    ``http://``, ``udp://``, a camera device), decoded with FFmpeg's threads.

    Attributes:
        rate: its frame rate (25 where the container does not say).
        expected: its frame count where the container says it, else 0 (a stream).

    Raises:
        PredictInputError: it holds no video stream.
        av.FFmpegError: it cannot be opened.
    """

    def __init__(self, path: str | Path, options: dict | None = None):
        self.path = path
        self._container = av.open(str(path), options=options or {})
        if not self._container.streams.video:
            self._container.close()
            raise PredictInputError(f"{path}: holds no video stream")
        self._stream = self._container.streams.video[0]  # FFmpeg's slice threads: frame threads took 1.5 core-ms
        # a 1280 x 1024 frame against 1.2 and add a frame of latency per thread (docs/predict.md)
        self.rate = Fraction(self._stream.average_rate or 25)
        self.expected = int(self._stream.frames or 0)

    def frames(self) -> Iterator[Frame]:
        """Its frames in order, each with its index and time stamp."""
        base = self._stream.time_base or Fraction(1, 25)
        for index, frame in enumerate(self._container.decode(self._stream)):
            seconds = float(frame.pts * base) if frame.pts is not None else index / float(self.rate)
            yield Frame(index, seconds, frame_rgb(frame), time.perf_counter())

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BT601 = (2, 5, 6)  # FFmpeg's colour spaces that OpenCV's YUV conversion assumes: unspecified, BT.470BG, SMPTE 170M


def frame_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB of a decoded frame. An H.264 frame as most files hold it (4:2:0, limited range,
    BT.601 or unspecified colours, even sizes) goes through OpenCV, 0.3 ms less than FFmpeg's converter for a
    1280 x 1024 frame, the values within 3 levels of it; any other through FFmpeg."""
    if (
        frame.format.name == "yuv420p"
        and frame.width % 2 == 0
        and frame.height % 2 == 0
        and frame.colorspace in BT601
        and frame.color_range != 2  # 2: full range (JPEG)
    ):
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def video_frames(path: str | Path) -> Iterator[Frame]:
    """The frames of a video (:class:`VideoReader`), its container closed when they end."""
    with VideoReader(path) as reader:
        yield from reader.frames()


def video_info(path: str | Path) -> tuple[int, Fraction]:
    """``(frame count or 0 where the container does not say, frame rate)`` of a video file."""
    try:
        with VideoReader(path) as reader:
            return reader.expected, reader.rate
    except (av.FFmpegError, PredictInputError):
        return 0, Fraction(25)


def count_frames(path: str | Path) -> int:
    """The frames of a video file that can be read back (its packets, without decoding them); 0 for a
    missing or unreadable file. A file cut short by a crash counts what is whole."""
    try:
        with av.open(str(path)) as container:
            count = 0
            with contextlib.suppress(av.FFmpegError):
                for packet in container.demux(container.streams.video[0]):
                    count += packet.size > 0
            return count
    except (av.FFmpegError, IndexError, FileNotFoundError):
        return 0


# --------------------------------------------------------------------------- outputs


FRAGMENTED = {"movflags": "empty_moov+default_base_moof+frag_keyframe", "flush_packets": "1"}
"""Container options of both writers: the index written ahead of the frames and a fragment per key frame
(the overlay video has one a second, the mask video's frames are all key frames), so that a file cut short
by a crash plays up to its last fragment."""

OVERLAY_SIZE = 640  # the overlay video's longest side by default (kdas predict --overlay-size)


def overlay_size(width: int, height: int, longest: int | None = OVERLAY_SIZE) -> tuple[int, int]:
    """``(width, height)`` of the overlay video of a ``width x height`` source: its longest side
    ``longest`` pixels (never enlarged; ``None`` or 0: the source's own size), both sides even (4:2:0
    needs even sizes)."""
    scale = min(1.0, longest / max(width, height)) if longest else 1.0
    return tuple(max(2, int(side * scale / 2 + 0.5) * 2) for side in (width, height))  # halves round up


class OverlayVideo:
    """The overlays as an H.264 video (``yuv420p``, x264's ``ultrafast`` preset) in a fragmented MP4
    (:data:`FRAGMENTED`: a run stopped part-way, even killed, leaves a file that plays up to its last
    whole second).

    Each frame is drawn at the video's size (:func:`overlay_size`: by default its longest side 640 px):
    drawing and encoding a 1280 x 1024 frame at its own size took 3.7 + 8.0 ms of one core, about a third
    of what the network leaves on a 2-core CPU (docs/predict.md, "Where the time goes")."""

    OPTIONS = {"preset": "ultrafast", "crf": "23", "threads": "1"}  # one thread: the cores run the network

    def __init__(self, path: Path, rate: Fraction, longest: int | None = OVERLAY_SIZE):
        self.path, self.rate, self.longest = Path(path), Fraction(rate), longest
        self._container = self._stream = None
        self.size: tuple[int, int] | None = None  # (width, height), set by the first frame
        self.frames, self._pts = 0, -1

    def _open(self, width: int, height: int):
        self._container = av.open(str(self.path), mode="w", format="mp4", options=FRAGMENTED)
        self._stream = self._container.add_stream("libx264", rate=self.rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.gop_size = max(1, round(float(self.rate)))
        self._stream.options = dict(self.OPTIONS)

    def write(self, rgb: np.ndarray, mask: np.ndarray, seconds: float | None = None) -> None:
        """Add the ``(H, W, 3) uint8`` frame with its ``(H, W)`` mask drawn over it (:meth:`draw`, then
        :meth:`add`)."""
        self.add(self.draw(rgb, mask), seconds)

    def draw(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The ``(H, W, 3) uint8`` frame and its ``(H, W)`` mask, both resized to the video's size, the mask
        drawn over the frame (:func:`~kdas_utils.plots.overlay`)."""
        self.size = self.size or overlay_size(rgb.shape[1], rgb.shape[0], self.longest)
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(_as_uint8(mask), self.size, interpolation=cv2.INTER_NEAREST)
        return overlay(rgb, mask)

    def add(self, drawn: np.ndarray, seconds: float | None = None) -> None:
        """Encode a frame :meth:`draw` made; ``seconds``, its time stamp in the source, keeps the timing of a
        source whose frames were dropped (a live stream); without it, frames follow each other at ``rate``."""
        if self._container is None:
            self._open(drawn.shape[1], drawn.shape[0])
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(drawn, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        wanted = self._pts + 1 if seconds is None else round(seconds * self.rate)
        self._pts = frame.pts = max(self._pts + 1, wanted)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        if self._container is None:
            return None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return self.path


class MaskVideo:
    """The binary masks (each frame's own size) as one lossless video: every frame a 1-bit PNG
    (``monob``) in a fragmented QuickTime file (:data:`FRAGMENTED`: a fragment per frame), which FFmpeg and
    VLC play and which stays readable up to its last frame when a run is stopped. A 1280 x 1024 mask, a tenth
    of it polyp, took 4.6 kB and 0.3 ms of one core (:func:`monob_frame`, then zlib at its fastest level;
    at zlib's default level 3.2 kB and 0.7 ms; H.264's lossless mode in Matroska, used before, 7.5 kB and
    3.4 ms). Read them back with :func:`read_masks`."""

    OPTIONS = {"compression_level": "1"}

    def __init__(self, path: Path, rate: Fraction):
        self.path, self.rate = Path(path), Fraction(rate)
        self._container = self._stream = None
        self.frames = 0

    def write(self, mask: np.ndarray) -> None:
        """Add a ``(H, W)`` bool (or {0, 1}) mask."""
        if self._container is None:
            self._container = av.open(str(self.path), mode="w", format="mov", options=FRAGMENTED)
            self._stream = self._container.add_stream("png", rate=self.rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = mask.shape[1], mask.shape[0], "monob"
            self._stream.options = dict(self.OPTIONS)
        for packet in self._stream.encode(monob_frame(mask)):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        if self._container is None:
            return None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return self.path


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as {0, 1} uint8 without a copy (a view of its bytes)."""
    mask = np.asarray(mask)
    return mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8, copy=False)


def monob_frame(mask: np.ndarray) -> av.VideoFrame:
    """A ``(H, W)`` bool (or {0, 1}) mask as a 1-bit ``monob`` frame: eight pixels a byte, the first in the
    highest bit (``np.packbits``), each row padded to the frame's line size. FFmpeg's own conversion of an
    8-bit grey frame to ``monob`` gives the same bytes but took 1.5 ms of one core at 1280 x 1024, this 0.1 ms
    (docs/predict.md, "Where the time goes")."""
    height, width = mask.shape
    frame = av.VideoFrame(width, height, "monob")
    plane = frame.planes[0]
    packed = np.packbits(np.asarray(mask, dtype=bool), axis=1)
    if packed.shape[1] != plane.line_size:
        packed = np.pad(packed, ((0, 0), (0, plane.line_size - packed.shape[1])))
    plane.update(packed)
    return frame


def read_masks(path: str | Path) -> Iterator[np.ndarray]:
    """The masks of a :class:`MaskVideo`, one ``(H, W)`` bool array per frame, in order."""
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            yield frame.to_ndarray(format="gray") >= 128


def write_clip(
    images, path: str | Path, frames_each: int = 1, size: tuple[int, int] | None = None, rate: int = 25, count=None
) -> Path:
    """An H.264 MP4 (``yuv420p``) of ``images`` (paths or ``(H, W, 3)`` uint8 arrays), each resized to ``size``
    ``(width, height)`` (default: the first image's) and held for ``frames_each`` frames; ``count`` frames in
    all, cycling through the images (default: each image once). For lessons, tests and the bench."""
    frames = [np.asarray(Image.open(i).convert("RGB")) if isinstance(i, (str, Path)) else i for i in images]
    size = size or (frames[0].shape[1], frames[0].shape[0])
    frames = [
        f if (f.shape[1], f.shape[0]) == size else cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames
    ]
    count = count or len(frames) * frames_each
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for index in range(count):
            frame = frames[(index // frames_each) % len(frames)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
