"""One trained network, ready for frames of any size: :class:`Predictor` and its :class:`Prediction`.

What a prediction is (this series' choice; the released KDAS code has no prediction command): the
frame is resized to the network's input size ``S`` (bilinear, as in evaluation) and ImageNet-normalised,
the network gives ``sigmoid(P1 + P2)`` at ``S x S``, optionally averaged with the prediction of the
horizontally flipped frame flipped back (``tta``), then the probability map is resized to the frame's
size (bilinear, half-pixel centres) and thresholded (``>= threshold``, 0.5 by default).

The network runs on one of three *backends*: ``torch`` (PyTorch, any device), ``onnx`` (the student
exported to ONNX, run by ONNX Runtime on the CPU; the default on a CPU where ONNX Runtime is
installed, the ``export`` extra) and ``onnx-int8`` (the same graph with its matrix products
quantised to int8 by ONNX Runtime; opt-in: ``docs/predict.md`` gives its measured tolerance).
A weight file is exported once per input size and cached under ``runs/onnx-cache/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..config import Profile, get_profile, runs_dir
from ..data import eval_transforms
from ..engine import select_device
from ..errors import KDASError
from ..export import OnnxPredictor, export_onnx, quantize_onnx
from ..models import load_network
from ..runs import StudentRecipe

DEFAULT_SIZE = 352  # the paper's input size, for weight files that do not record theirs
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


class PredictInputError(KDASError):
    """An input of ``kdas predict`` that cannot be used (missing, empty, of an unknown kind), or an
    output that would be overwritten; the message names it."""


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
        """The share of the frame's pixels called polyp (counted: ``mask.mean()`` makes a float copy first,
        0.5 ms of a 1280 x 1024 frame against 0.04)."""
        return np.count_nonzero(self.mask) / self.mask.size

    @property
    def max_probability(self) -> float:
        return float(self.probability.max())

    @property
    def bbox(self) -> tuple[int, int, int, int] | None:
        """``(x_min, y_min, x_max, y_max)`` of the mask's pixels (inclusive), or ``None`` without polyp."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.mask.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])

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


# --------------------------------------------------------------------------- backends


class TorchBackend:
    """``(B, 3, S, S)`` float32 -> ``(B, S, S)`` probabilities with a PyTorch network."""

    name = "torch"
    lanes = 1  # PyTorch's threads are the process's: one batch at a time, on all of them

    def __init__(self, model: torch.nn.Module, device):
        self.device = select_device(device)
        self.model = model.to(self.device).eval()

    def lane(self, images: np.ndarray) -> np.ndarray:
        return self(images)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        logits = self.model(torch.from_numpy(images).to(self.device)).logits.float()
        return torch.sigmoid(logits)[:, 0].cpu().numpy()


class OnnxBackend:
    """The same with an exported student on ONNX Runtime's CPU provider
    (:class:`kdas_utils.export.OnnxPredictor`); ``name`` is ``onnx`` or ``onnx-int8``.

    A call runs one batch on ``threads`` threads (default: one per core). :meth:`lane` runs a batch on one
    thread instead, and is safe to call from several threads at once: ``lanes`` of them side by side (one per
    core) are how :class:`~.stream.Pipeline` runs a video. On 2 cores two batches at once ran 84 frames/s of
    the 256 px student against 65 for one batch on two threads, whose threads wait for each other after every
    operation (docs/predict.md, "Where the time goes")."""

    def __init__(self, path: str | Path, name: str = "onnx", threads: int | None = None):
        self.session = OnnxPredictor(path, threads=threads)
        self.image_size, self.name, self.path = self.session.image_size, name, Path(path)
        self.lanes = (threads or cpu_cores()) if threads != 1 else 1
        self._one_thread = self.session if threads == 1 else None
        self._making = threading.Lock()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session(images)[:, 0]

    def lane(self, images: np.ndarray) -> np.ndarray:
        """The same on one thread (a session of its own, made at the first call)."""
        with self._making:
            if self._one_thread is None:
                self._one_thread = OnnxPredictor(self.path, threads=1)
        return self._one_thread(images)[:, 0]


def cpu_cores() -> int:
    """The cores this process may run on (its affinity where the system says, as in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def onnx_runtime_available() -> bool:
    """Whether ONNX Runtime and the exporter's packages are installed (the ``export`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


def cached_onnx(weights: Path, model: torch.nn.Module, size: int, int8: bool = False) -> Path:
    """The ONNX export of ``weights`` at ``size`` px (int8-quantised with ``int8``), written once under
    ``runs/onnx-cache/`` and named after the file's contents, so a changed weight file is exported again."""
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    folder = runs_dir() / "onnx-cache"
    fp32 = folder / f"{Path(weights).stem}-{digest}-{size}.onnx"
    if not fp32.exists():
        export_onnx(model, fp32, image_size=size)
    if not int8:
        return fp32
    quantised = fp32.with_name(fp32.stem + "-int8.onnx")
    if not quantised.exists():
        quantize_onnx(fp32, quantised)
    return quantised


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
            f"(kdas distill --profile {profile.name}) or pass --weights FILE (an engine checkpoint, a "
            f"state_dict of the student, or a Polyp-PVT-format file) or --onnx FILE"
        )
    return path


def choose_backend(backend: str, device) -> str:
    """``auto`` made concrete: ``onnx`` on the CPU where ONNX Runtime is installed, else ``torch``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    on_cpu = device == "cpu" or (device is None and select_device(None).type == "cpu")
    return "onnx" if on_cpu and onnx_runtime_available() else "torch"


class Predictor:
    """A trained network, ready for frames of any size.

    Args:
        weights: an engine checkpoint (``best.pt``), the package's own ``state_dict`` of
            :func:`~kdas_utils.models.build_student` / ``build_teacher``, or a Polyp-PVT-format file (the
            official ``PolypPVT.pth``, or a student saved the released code's way); ``None`` (and no
            ``onnx``) takes the profile's trained KDAS student (:func:`default_weights`).
        onnx: an ONNX file written by :func:`kdas_utils.export.export_onnx`, run with ONNX Runtime on
            the CPU (its input size is fixed at export).
        backend: ``auto`` (ONNX Runtime on the CPU when installed, else PyTorch), ``torch``, ``onnx`` or
            ``onnx-int8`` (see the module's text).
        profile: the profile whose student is the default.
        size: the network's input size ``S`` (a multiple of 32); default: the size the checkpoint
            was trained at, the ONNX model's, else 352.
        threshold: probabilities at or above it are polyp.
        tta: also predict on the horizontally flipped frame and average the two probability maps.
        device: for PyTorch (``cuda`` | ``mps`` | ``cpu``; default the best available).
        threads: ONNX Runtime's threads (default: its own choice, one per core).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        onnx: str | Path | None = None,
        backend: str = "auto",
        profile: Profile | None = None,
        size: int | None = None,
        threshold: float = 0.5,
        tta: bool = False,
        device=None,
        threads: int | None = None,
    ):
        if weights is not None and onnx is not None:
            raise PredictInputError("give either weights (--weights) or an ONNX file (--onnx), not both")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold}: must lie strictly between 0 and 1, e.g. 0.5")
        if onnx is not None:
            if device not in (None, "cpu"):
                raise PredictInputError(f"--onnx runs on the CPU (ONNX Runtime's CPU provider), not on {device}")
            self.network = OnnxBackend(onnx, threads=threads)
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
            self.size = size or recorded_size(weights) or DEFAULT_SIZE
            self.source = getattr(model, "weights_source", str(weights))
            chosen = choose_backend(backend, device)
            if chosen == "torch":
                self.network = TorchBackend(model, device)
            else:
                if device not in (None, "cpu"):
                    raise PredictInputError(f"--backend {chosen} runs on the CPU, not on {device}; use --backend torch")
                path = cached_onnx(weights, model, self.size, int8=chosen == "onnx-int8")
                self.network = OnnxBackend(path, chosen, threads)
        if self.size % 32:
            raise ValueError(f"size={self.size}: must be a multiple of 32, e.g. {DEFAULT_SIZE}")
        self.threshold, self.tta = threshold, tta
        self._transform = eval_transforms(self.size)

    @property
    def backend(self) -> str:
        """``torch``, ``onnx`` or ``onnx-int8``: what runs the network."""
        return self.network.name

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """``(3, S, S)`` float32: one ``(H, W, 3) uint8`` frame resized and normalised as in evaluation."""
        return self._transform(image=image)["image"].numpy()

    def inputs(self, images: list[np.ndarray]) -> np.ndarray:
        """``(B, 3, S, S)`` float32: the frames resized and normalised as in evaluation."""
        return np.stack([self.prepare(image) for image in images]).astype(np.float32, copy=False)

    @property
    def lanes(self) -> int:
        """How many batches may run side by side through ``run(batch, lane=True)`` (the backend's ``lanes``)."""
        return self.network.lanes

    def run(self, batch: np.ndarray, lane: bool = False) -> np.ndarray:
        """``(B, S, S)`` float32 probabilities of prepared inputs (flip-averaged with ``tta``); with ``lane``, on
        one of the backend's :attr:`lanes` (one thread, callable from several threads at once)."""
        network = self.network.lane if lane else self.network
        probability = network(batch)
        if self.tta:
            flipped = network(np.ascontiguousarray(batch[..., ::-1]))
            probability = (probability + flipped[..., ::-1]) / 2
        return probability

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """``(B, S, S)`` float32 probabilities of RGB frames at the network's size."""
        return self.run(self.inputs(images))

    def finish(self, frame: np.ndarray, probability: np.ndarray) -> Prediction:
        """The :class:`Prediction` of ``frame`` from its ``(S, S)`` probability map: resized to the frame's
        size (bilinear, half-pixel centres, as ``torch.nn.functional.interpolate`` with
        ``align_corners=False``) and thresholded."""
        height, width = frame.shape[:2]
        full = cv2.resize(
            np.ascontiguousarray(probability, np.float32), (width, height), interpolation=cv2.INTER_LINEAR
        )
        return Prediction(full, full >= self.threshold)

    def predict_batch(self, images) -> list[Prediction]:
        """One :class:`Prediction` per frame (paths, PIL images or RGB arrays, of any sizes)."""
        frames = [as_rgb(image) for image in images]
        if not frames:
            return []
        return [self.finish(frame, p) for frame, p in zip(frames, self.probabilities(frames))]

    def predict(self, image) -> Prediction:
        """The :class:`Prediction` of one frame (a path, a PIL image or an ``(H, W, 3)`` uint8 array)."""
        return self.predict_batch([image])[0]
