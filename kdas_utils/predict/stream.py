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

What a video becomes is written by :mod:`.writers` (the overlay and mask videos).
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
import numpy as np

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
CPU_PARTS = ("network", "read", "write", "process")  # PipelineReport.cpu_seconds


@dataclass
class PipelineReport:
    """What a :class:`Pipeline` run did: frames written and dropped, seconds in all and in the network,
    each frame's latency (decoded to written; the last :data:`LATENCIES_KEPT`), and whether it was stopped
    before the source ended.

    ``cpu_seconds``: CPU time (``time.thread_time``) of the threads that called the network (``network``:
    all of it on ONNX Runtime's one-thread lanes, only the calling thread's share for a backend with a
    thread pool of its own), of the reader (``read``: decoding as far as FFmpeg's own threads are not
    involved, to RGB, the network's input) and of the writer (``write``: the mask at the frame's size, the
    overlay, both encoders, the CSV), and of the whole process while the run lasted (``process``): where
    the cores went, beside the network.
    """

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    network_seconds: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    stopped: bool = False
    cpu_seconds: dict = field(default_factory=lambda: dict.fromkeys(CPU_PARTS, 0.0))

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
        start, process = time.perf_counter(), time.process_time()
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
            report.cpu_seconds["process"] += time.process_time() - process
        report.stopped = report.stopped or interrupted is not None or bool(failure)
        if interrupted is not None:
            raise interrupted
        if failure:
            raise failure[0]
        return report

    # ------------------------------------------------------------------ the three stages

    def _read(self, frames, inputs: queue.Queue, stop: threading.Event, live: bool, report: PipelineReport):
        error, cpu = None, time.thread_time()
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
        report.cpu_seconds["read"] += time.thread_time() - cpu
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
        began, cpu = time.perf_counter(), time.thread_time()
        probabilities = self.predictor.run(stacked, lane=lane)
        with self._timing:
            report.network_seconds += (time.perf_counter() - began) / (self.lanes if lane else 1)
            report.cpu_seconds["network"] += time.thread_time() - cpu
        return probabilities

    def _write(self, outputs: queue.Queue, write, stop: threading.Event, report: PipelineReport, failure: list):
        cpu = time.thread_time()
        while True:
            item = outputs.get()
            if isinstance(item, _End):
                report.cpu_seconds["write"] += time.thread_time() - cpu
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
        # FFmpeg's default slice threads: frame threads took 1.5 ms of CPU a 1280 x 1024 frame against 1.2 and
        # add a frame of latency per thread (docs/predict.md)
        self._stream = self._container.streams.video[0]
        self.rate = Fraction(self._stream.average_rate or 25)
        self.expected = int(self._stream.frames or 0)

    def frames(self) -> Iterator[Frame]:
        """Its frames in order, each with its index and time stamp."""
        base = self._stream.time_base or Fraction(1, 25)
        for index, frame in enumerate(self._container.decode(self._stream)):
            seconds = float(frame.pts * base) if frame.pts is not None else index / float(self.rate)
            yield Frame(index, seconds, frame.to_ndarray(format="rgb24"), time.perf_counter())

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
