"""Deployment: the student as an ONNX model, run by onnxruntime.

The exported graph takes ``image`` ``(B, 3, S, S)`` float32, ImageNet-normalised (as
:func:`kdas_utils.data.eval_transforms` makes it), and returns ``probability`` ``(B, 1, S, S)``,
``sigmoid(P1 + P2)``. The batch size is dynamic; the image size ``S`` is fixed at export (352
by default, the paper's), because the decoder's upsampling factors are baked into the graph.
Export with another ``image_size`` for another input size.

Needs the ``export`` extra: ``pip install -e '.[export]'`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .files import atomic_path


class ProbabilityModel(nn.Module):
    """A Polyp-PVT network with a plain tensor output: ``(B, 1, H, W)`` probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(image).logits)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs {module}: pip install -e '.[export]' (onnx, onnxscript, onnxruntime)"
        ) from error


def export_onnx(model: nn.Module, path: str | Path, image_size: int = 352, max_batch: int = 64) -> Path:
    """Write ``model`` (in ``eval()`` mode, on the CPU) to ``path`` as ONNX with a dynamic batch."""
    _require("onnx"), _require("onnxscript")
    if image_size % 32:
        raise ValueError(f"image_size={image_size}: must be a multiple of 32, e.g. 352")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = ProbabilityModel(model.cpu().eval()).eval()
    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with atomic_path(path) as partial:
        torch.onnx.export(
            predictor,
            (example,),
            str(partial),
            dynamo=True,
            input_names=["image"],
            output_names=["probability"],
            dynamic_shapes={"image": {0: batch}},
            verbose=False,
        )
    return path


def quantize_onnx(source: str | Path, path: str | Path) -> Path:
    """An int8 copy of an exported model: ONNX Runtime's dynamic quantisation of the matrix products
    (``MatMul``, ``Gemm``: the transformer's attention and MLP layers; weights int8 per channel, activations
    quantised at each call), the convolutions left in fp32. Written whole or not at all.

    How far its masks are from the fp32 model's is measured, not assumed: ``python -m kdas_utils.bench
    --predict`` and ``docs/predict.md``."""
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic  # optional: the export extra

    path = Path(path)
    with atomic_path(path) as partial:
        quantize_dynamic(
            str(source),
            str(partial),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
        )
    return path


class OnnxPredictor:
    """onnxruntime on the CPU: ``predictor(images)`` with ``(B, 3, S, S)`` float32 arrays."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle threads sleep instead of spinning: beside a video's decoding and encoding threads, spinning
        # takes the cores they need (kdas predict's pipeline).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads == 1:  # a one-thread session runs several batches at once (kdas predict's lanes); with ONNX
            # Runtime's memory patterns each run held a block of its own: 2341 MB at 352 px against 1858, as fast
            options.enable_mem_pattern = False
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]

    @property
    def image_size(self) -> int:
        return int(self.input.shape[-1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"images of shape {images.shape}: this model takes (B, 3, {self.image_size}, "
                f"{self.image_size}); resize with eval_transforms({self.image_size}) or export again"
            )
        return self.session.run(None, {self.input.name: images})[0]
