"""What ``kdas predict`` writes for a video: the overlay video (:class:`OverlayVideo`, H.264 in a fragmented MP4)
and every mask, lossless (:class:`MaskVideo`, 1-bit PNG frames in a fragmented QuickTime file, read back with
:func:`read_masks`). Both files stay readable when the process is stopped part-way. :func:`write_clip` makes a
video of images for lessons, tests and the bench.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from ..plots import overlay

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


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, C) uint8`` ``image`` made smaller, to ``size`` ``(width, height)``: halved by averaging 2 x 2
    blocks (OpenCV's ``INTER_AREA`` at exactly half, which it does fast; an odd last row or column is left
    out) as long as it stays at least twice ``size``, then bilinear for the rest (at most halving: no pixel
    skipped). A 1280 x 1024 frame becomes 640 x 512 exactly as ``INTER_AREA`` makes it; ``INTER_AREA`` at any
    other ratio is slow: from 1350 x 1080 it took 4.6 ms of one core against 0.9 this way, the pixels within
    0.4 grey levels of it on average (docs/predict.md)."""
    width, height = size
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        even = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
        image = cv2.resize(even, (even.shape[1] // 2, even.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


class _Encoder:
    """What both writers share: a container and its one stream, opened at the first frame by the writer, each
    frame's packets written as they come, and :meth:`close`."""

    path: Path

    def _encode(self, frame: av.VideoFrame | None) -> None:
        """Encode ``frame`` and write its packets (``None``: flush the encoder)."""
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> Path | None:
        """Flush the encoder and close the file: its path, or ``None`` when no frame came."""
        if self._container is None:
            return None
        self._encode(None)
        self._container.close()
        self._container = None
        return self.path


class OverlayVideo(_Encoder):
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
            rgb = shrink(rgb, self.size)
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
        self._encode(frame)
        self.frames += 1


class MaskVideo(_Encoder):
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
        self._encode(monob_frame(mask))
        self.frames += 1


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
