"""Size and speed beside accuracy: parameters, FLOPs, latency and throughput.

FLOPs come from torch's own ``FlopCounterMode`` (one multiply-add = 2 FLOPs). Timings run
``warmup`` untimed passes, then ``repeats`` timed ones, and report the **median** (robust to
the odd slow pass); on CUDA each timing waits for the GPU (``synchronize``).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .engine import select_device
from .models import count_parameters


@torch.inference_mode()
def count_flops(model, image_size: int = 352, device=None) -> int:
    """FLOPs of one forward pass of a ``(1, 3, image_size, image_size)`` input."""
    device = select_device(device)
    model = model.to(device).eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    return int(counter.get_total_flops())


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
    import pandas as pd

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
