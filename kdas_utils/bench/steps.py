"""What one step, one forward and one batch of loading cost: the distillation step beside its bound,
inference latency and throughput, data loading, and a profile of the teacher's step."""

from __future__ import annotations

import resource
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from .. import speed
from ..config import get_profile
from ..efficiency import device_sync, median_seconds, time_forward
from ..engine import (
    TrainConfig,
    Trainer,
)
from ..kdas import DistillationObjective, KDASLoss, SegmentationObjective
from ..models import build_student, build_teacher
from ..runs import profile_datasets


class Synthetic(torch.utils.data.Dataset):
    """A fixed random batch's worth of items (the step timings need no real data)."""

    def __init__(self, n: int, size: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.masks = (torch.rand(n, 1, size, size, generator=g) > 0.7).float()
        self.transform = None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "mask": self.masks[i], "name": f"random_{i}"}


def step_times(
    batch_size: int,
    image_size: int,
    device,
    warmup: int = 1,
    repeats: int = 3,
    compile: bool = False,
    path: speed.SpeedPath = speed.NEW,
) -> dict:
    """Median seconds of the distillation step and of its bound (teacher forward + student step);
    with ``compile``, every forward goes through ``torch.compile`` (compiled in the warm-up); ``path``:
    the speed-ups on (:mod:`kdas_utils.speed`; :data:`~kdas_utils.speed.BASELINE`: the loop as before)."""
    sync = device_sync(device)
    data = Synthetic(batch_size, image_size)
    batch = {"image": data.images, "mask": data.masks, "name": [f"random_{i}" for i in range(batch_size)]}
    changes = path.changes(cpu=torch.device(device).type == "cpu")
    config = TrainConfig(
        epochs=1, batch_size=batch_size, image_size=image_size, progress=False, compile=compile, **changes
    )
    teacher = build_teacher().to(device).eval()
    teacher_call = torch.compile(teacher) if compile else teacher
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        alone = Trainer(build_student(), data, data, config, tmp, objective=SegmentationObjective(), device=device)
        torch.manual_seed(0)
        distil = Trainer(
            build_student(),
            data,
            data,
            config,
            tmp,
            objective=DistillationObjective(teacher, KDASLoss(at="paper", sgm="released")),
            device=device,
        )
        images = data.images.to(device)
        if alone.runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)

        def teacher_forward():
            with torch.inference_mode(), alone.runtime.autocast():
                teacher_call(images)

        result = {
            "teacher_forward_s": median_seconds(teacher_forward, warmup, repeats, sync),
            "student_step_s": median_seconds(lambda: alone.train_step(batch), warmup, repeats, sync),
            "distill_step_s": median_seconds(lambda: distil.train_step(batch), warmup, repeats, sync),
        }
    result["bound_s"] = result["teacher_forward_s"] + result["student_step_s"]
    result["ratio_to_bound"] = result["distill_step_s"] / result["bound_s"]
    result["distill_images_per_s"] = batch_size / result["distill_step_s"]
    return result


def inference(device, image_size: int = 352, throughput_batch: int = 16, warmup: int = 2, repeats: int = 5) -> dict:
    """Latency (batch 1) and throughput (``throughput_batch``) of teacher and student."""
    out = {}
    for name, build in (("teacher", build_teacher), ("student", build_student)):
        model = build()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        latency = time_forward(model, 1, image_size, device, warmup, repeats)
        batch = time_forward(model, throughput_batch, image_size, device, warmup, repeats)
        out[name] = {
            "latency_bs1_ms": latency * 1e3,
            f"throughput_bs{throughput_batch}_img_s": throughput_batch / batch,
        }
        if device.type == "cuda":
            out[name]["peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["student_teacher_latency_ratio"] = out["teacher"]["latency_bs1_ms"] / out["student"]["latency_bs1_ms"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    return out


def data_loading(profile_name: str, batches: int = 20) -> dict:
    """Images/s that one data-loading process delivers for a profile's training set (decode,
    resize, augment, normalise), on the first pass (cold: files decoded) and the second (warm:
    frames from the cache of :class:`~kdas_utils.data.PolypDataset`). A loader with ``w``
    workers delivers about ``w`` times that."""
    profile = get_profile(profile_name)
    train_set, _ = profile_datasets(profile, cache=True)
    n = min(len(train_set), batches * profile.batch_size)
    rates = {}
    for name in ("cold", "warm"):
        start = time.perf_counter()
        for i in range(n):
            train_set[i]
        rates[f"{name}_images_per_s"] = n / (time.perf_counter() - start)
    return {
        "profile": profile.name,
        "image_size": profile.image_size,
        "images": n,
        **rates,
        "workers_in_profile": profile.num_workers,
    }


def profile_step(batch_size: int = 8, image_size: int = 128, steps: int = 3, rows: int = 25) -> str:
    """``torch.profiler``'s table (operators by self CPU time) of the teacher's training step at the
    standard profile's batch and size: where a step's time goes. ``python -m kdas_utils.bench
    --profile-step`` writes it to ``<out>/profile-teacher-step-<date>.txt``."""
    data = Synthetic(batch_size, image_size)
    batch = {"image": data.images, "mask": data.masks, "name": [f"random_{i}" for i in range(batch_size)]}
    config = TrainConfig(epochs=1, batch_size=batch_size, image_size=image_size, progress=False, drop_path_rate=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        trainer = Trainer(build_teacher(drop_path_rate=0.1), data, data, config, tmp, device="cpu")
        for _ in range(2):  # warm-up
            trainer.train_step(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                trainer.train_step(batch)
    head = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads: the teacher's training step "
        f"(batch {batch_size}, {image_size} px, stochastic depth 0.1), {steps} steps after 2 of warm-up\n"
    )
    return head + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
