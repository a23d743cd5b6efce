"""Size and speed beside accuracy: parameters, FLOPs, latency and throughput.

FLOPs come from torch's own ``FlopCounterMode`` (one multiply-add = 2 FLOPs), counted with timm's
attention on its explicit path (``q @ k^T``, softmax, ``@ v``): some torch releases have no FLOP
formula for the fused CPU attention kernel and would leave the attention out. Timings run
``warmup`` untimed passes, then ``repeats`` timed ones, and report the **median** (robust to
the odd slow pass); on CUDA each timing waits for the GPU (``synchronize``).
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from .engine import select_device
from .kdas import count_parameters


@torch.inference_mode()
def count_flops(model, image_size: int = 352, device=None) -> int:
    """FLOPs of one forward pass of a ``(1, 3, image_size, image_size)`` input, the attention's
    matrix products included whatever the torch release (:func:`explicit_attention`)."""
    device = select_device(device)
    model = model.to(device).eval()
    counter = FlopCounterMode(display=False)
    with explicit_attention(model), counter:
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    return int(counter.get_total_flops())


@contextmanager
def explicit_attention(model):
    """Run timm's attention layers of ``model`` (those with a ``fused_attn`` flag) on their explicit
    path, ``softmax(q k^T / sqrt(d)) v`` as two matrix products, and put the flags back afterwards.
    The same numbers up to rounding; only slower."""
    layers = [module for module in model.modules() if isinstance(getattr(module, "fused_attn", None), bool)]
    flags = [layer.fused_attn for layer in layers]
    try:
        for layer in layers:
            layer.fused_attn = False
        yield model
    finally:
        for layer, flag in zip(layers, flags):
            layer.fused_attn = flag


def median_seconds(fn, warmup: int, repeats: int, sync=lambda: None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones;
    ``sync`` waits for the device after each call (``torch.cuda.synchronize`` on a GPU)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_sync(device: torch.device):
    """The function that waits for ``device`` to finish its queued work (a no-op on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


@torch.inference_mode()
def time_forward(
    model, batch_size: int = 1, image_size: int = 352, device=None, warmup: int = 2, repeats: int = 5
) -> float:
    """Median seconds of one forward pass of a ``(batch_size, 3, image_size, image_size)`` batch."""
    device = select_device(device)
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    return median_seconds(lambda: model(x), warmup, repeats, device_sync(device))


def efficiency_table(
    models: dict, image_size: int = 352, device=None, throughput_batch: int = 16, warmup: int = 2, repeats: int = 5
):
    """One row per model: parameters (M), GFLOPs, latency at batch 1 (ms) and throughput at
    ``throughput_batch`` (images/s), on ``device``."""
    device = select_device(device)
    rows = []
    for label, model in models.items():
        latency = time_forward(model, 1, image_size, device, warmup, repeats)
        batch = time_forward(model, throughput_batch, image_size, device, warmup, repeats)
        rows.append(
            {
                "model": label,
                "parameters (M)": count_parameters(model) / 1e6,
                "GFLOPs": count_flops(model, image_size, device) / 1e9,
                "latency bs1 (ms)": latency * 1e3,
                f"throughput bs{throughput_batch} (img/s)": throughput_batch / batch,
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    table.attrs.update(device=str(device), image_size=image_size, threads=torch.get_num_threads())
    return table


# --------------------------------------------------------------------------- planning a GPU session
#
# No T4 was lent to this project (an H200 was once: docs/gpu.md), so the `colab` profile's length is
# planned from FLOPs rather than timed: the cost of one epoch in FLOPs, divided by a throughput
# assumed for the GPU. The FLOPs are measured (count_flops, 352 px); the throughput is an assumption,
# stated where it is used.

TEACHER_GFLOPS_352 = 21.69  # Polyp-PVT (PVTv2-B2) forward at 352 px, count_flops here
STUDENT_GFLOPS_352 = 3.81  # the KDAS student (PVTv2-B0) forward at 352 px, count_flops here
TRAINING_STEP_FACTOR = 3.0  # forward + backward = 3 x forward (the backward costs about twice the forward)
PRANET_TRAIN_FRAMES = 1450  # PraNet's training set: 900 Kvasir-SEG + 550 CVC-ClinicDB frames
PAPER_EPOCHS = 100  # the paper's schedule (the released code trains 99 epochs)


def distillation_epoch_tflops(
    train_frames: int = PRANET_TRAIN_FRAMES,
    val_fraction: float = 0.1,
    scale_area: float = 1.0,
    teacher_gflops: float = TEACHER_GFLOPS_352,
    student_gflops: float = STUDENT_GFLOPS_352,
) -> float:
    """TFLOPs of one distillation epoch at 352 px (this series' estimate).

    Each training frame costs the frozen teacher's forward plus the student's forward and backward
    (:data:`TRAINING_STEP_FACTOR` x its forward); each validation frame one student forward.
    ``train_frames`` are split as :func:`kdas_utils.data.train_val_split` does (``val_fraction`` held
    out); ``scale_area`` is the summed relative area of multi-scale training (0.75 / 1 / 1.25 of 352 px,
    rounded to 256 / 352 / 448: 3.15), 1 for a single scale. The structure loss and the distillation
    terms add under 1 GFLOP per frame and are left out.

    torch's ``FlopCounterMode`` is not used for the backward: it over-counts the backward of grouped
    (depthwise) convolutions, which PVTv2's MLPs use, by the number of groups.
    """
    n_val = max(1, round(train_frames * val_fraction))
    per_frame = teacher_gflops + TRAINING_STEP_FACTOR * student_gflops
    return ((train_frames - n_val) * per_frame * scale_area + n_val * student_gflops) / 1e3


def epoch_seconds(sustained_tflops: float, overhead_s: float = 2.0, **epoch) -> float:
    """Seconds of one epoch on a device that sustains ``sustained_tflops`` on this network, plus
    ``overhead_s`` per epoch (checkpoint writes, validation start-up); ``epoch`` goes to
    :func:`distillation_epoch_tflops`."""
    if sustained_tflops <= 0:
        raise ValueError(f"sustained_tflops={sustained_tflops}: must be positive, e.g. 2.0")
    return distillation_epoch_tflops(**epoch) / sustained_tflops + overhead_s


def session_epochs(budget_s: float, sustained_tflops: float, overhead_s: float = 2.0, **epoch) -> int:
    """Epochs of distillation that fit ``budget_s`` seconds at ``sustained_tflops`` (see
    :func:`epoch_seconds`), at most the paper's :data:`PAPER_EPOCHS`. The ``colab`` profile's epochs
    are ``session_epochs(30 * 60, 2.0)``: 30 minutes of training at 2 TFLOPS, a cautious figure for a
    T4 (3% of its 65 TFLOPS fp16 tensor-core peak), which leaves the rest of the hour for setup,
    downloads and evaluation."""
    return max(1, min(PAPER_EPOCHS, int(budget_s // epoch_seconds(sustained_tflops, overhead_s, **epoch))))
