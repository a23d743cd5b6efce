"""The benchmark harness: what KDAS costs and saves on this machine (``make bench``).

    python -m kdas_utils.bench [--quick-only] [--notebooks] [--repeats 5] [--out benchmarks/results]

Measures on the current device, with warm-up passes and the median of repeated runs:

1. the distillation step (teacher forward + student forward/backward/step with KDASLoss) at the
   paper's batch and size (16 x 352 px) and at the quick profile's, next to its lower bound
   measured in the same run: the teacher's forward under ``inference_mode`` plus the student's
   own training step (segmentation loss only). The ratio says what distillation adds;
2. inference latency (batch 1) and throughput (batch 16) at 352 px for teacher and student, their
   ratio, and peak memory (RSS on CPU, allocated memory on GPU);
3. data loading: images/s of one loading process, cold (decoding files) and warm (from the
   frame cache), against the images/s the training step consumes;
4. ``kdas predict`` on a video: frames per second end to end (decode, predict, write masks,
   overlays and the overlay video) and in the network alone, with PyTorch and with ONNX Runtime,
   at batch 1 and 8, at 352 px (a seeded student: the speed does not depend on the weights);
5. with ``--notebooks``: the wall time of each notebook in the quick profile, and of the series;
6. today's path against the new one (:mod:`kdas_utils.speed`): the distillation step of the new
   code against the bound of the code before the speed-ups (``distill_step_ratio_to_old_bound``),
   with ``--epoch-times`` one standard-profile epoch of the teacher and of the KDAS student on
   each path (``epoch_speedup_teacher``, ``epoch_speedup_student``: today's time / the new one),
   and with ``--results-check`` a 3-epoch KDAS student on each (do the results move?).

Prints a table and writes ``<out>/<device>-<date>.json`` with, at the top level, ``device``,
``torch``, ``distill_step_ratio_to_bound``, ``distill_step_ratio_to_old_bound``,
``epoch_speedup_teacher`` and ``epoch_speedup_student`` (``null`` unless ``--epoch-times``),
``student_teacher_latency_ratio`` and ``series_quick_seconds`` (``null`` unless ``--notebooks``),
beside everything else measured. A finished run moves the earlier runs of its device to
``<out>/earlier/``, so that ``<out>`` holds the newest run of each device and nothing else of that
name; the one-off checks (``--int8-check``, ``--predict-only``, ``--profile-step``) write to
``<out>/checks/``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from . import speed
from .arguments import OneLineParser, positive_int
from .bench_predict import predict_speed, tolerance
from .config import get_profile, project_root
from .distill import DistillationObjective, KDASLoss
from .efficiency import device_sync, median_seconds, time_forward
from .engine import (
    SegmentationObjective,
    TrainConfig,
    Trainer,
    choose_precision,
    cpu_has_native_bf16,
    load_trained,
    select_device,
)
from .engine.objectives import int8_teacher
from .metrics import dice_at
from .models import build_student, build_teacher
from .runs import ARMS, profile_datasets
from .tutorial import run_notebooks


class _Synthetic(torch.utils.data.Dataset):
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
    batch_size: int, image_size: int, device, warmup: int = 1, repeats: int = 3, compile: bool = False
) -> dict:
    """Median seconds of the distillation step and of its bound (teacher forward + student step);
    with ``compile``, every forward goes through ``torch.compile`` (compiled in the warm-up)."""
    sync = device_sync(device)
    data = _Synthetic(batch_size, image_size)
    batch = {"image": data.images, "mask": data.masks, "name": [f"random_{i}" for i in range(batch_size)]}
    config = TrainConfig(epochs=1, batch_size=batch_size, image_size=image_size, progress=False, compile=compile)
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


def int8_check(teacher_path: str | Path, profile="standard", batch_size: int = 8, bf16: bool = False) -> dict:
    """The int8 teacher (:func:`~kdas_utils.engine.objectives.int8_teacher`) against the fp32 one on
    the validation split of ``profile``: each one's mean Dice at 0.5, their difference, the relative
    L2 error of every distillation target (``|int8 - fp32| / |fp32|`` per batch; max and mean) and
    the seconds of each forward over the split. With ``bf16``, also the fp32 teacher under bf16
    autocast (the teacher of a bf16 run without ``--teacher-int8``) against the fp32 one:
    ``val_dice_bf16``, ``val_dice_difference_bf16``, ``target_relative_error_bf16``, and
    ``forward_speedup_int8_over_bf16``. The int8 teacher itself never runs under autocast (its quantised
    layers take fp32; :class:`~kdas_utils.engine.objectives.DistillationObjective` turns autocast off
    around it), so its numbers are the same in a bf16 run."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    _, val_set = profile_datasets(profile)
    fp32 = load_trained(teacher_path, "cpu").eval()
    int8 = int8_teacher(fp32)
    variants = {"fp32": (fp32, False), "int8": (int8, False)}
    if bf16:
        variants["bf16"] = (fp32, True)
    dice, seconds = {name: [] for name in variants}, dict.fromkeys(variants, 0.0)
    errors = {name: {} for name in variants if name != "fp32"}
    with torch.inference_mode():
        for batch in torch.utils.data.DataLoader(val_set, batch_size=batch_size):
            outs = {}
            for name, (net, amp) in variants.items():
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    outs[name] = net(batch["image"])
                seconds[name] += time.perf_counter() - start
                dice[name].append(dice_at(torch.sigmoid(outs[name].logits.float()), batch["mask"]))
            a = outs["fp32"]
            for name, found in errors.items():
                b = outs[name]
                targets = {n: (getattr(a, n), getattr(b, n)) for n in ("p1", "p2", "cim", "cfm", "sam")}
                targets |= {f"stage{i + 1}": pair for i, pair in enumerate(zip(a.stages, b.stages))}
                for n, (x, y) in targets.items():
                    found.setdefault(n, []).append(((y.float() - x).norm() / x.norm()).item())
    means = {name: torch.cat(d).mean().item() for name, d in dice.items()}
    summary = {
        name: {n: {"max": max(e), "mean": sum(e) / len(e)} for n, e in found.items()} for name, found in errors.items()
    }
    report = {
        "teacher": str(teacher_path),
        "profile": profile.name,
        "frames": len(val_set),
        "val_dice_fp32": means["fp32"],
        "val_dice_int8": means["int8"],
        "val_dice_difference": means["int8"] - means["fp32"],
        "target_relative_error": summary["int8"],
        "forward_seconds": seconds,
        "forward_speedup": seconds["fp32"] / seconds["int8"],
        "threads": torch.get_num_threads(),
    }
    if bf16:
        report["val_dice_bf16"] = means["bf16"]
        report["val_dice_difference_bf16"] = means["bf16"] - means["fp32"]
        report["target_relative_error_bf16"] = summary["bf16"]
        report["forward_speedup_int8_over_bf16"] = seconds["bf16"] / seconds["int8"]
    return report


def _warm_datasets(profile) -> tuple:
    """``(train_set, val_set)`` of ``profile`` with every frame decoded into their caches, so that
    no timed epoch pays the decoding (the datasets are shared by every trainer of a measurement)."""
    sets = profile_datasets(profile)
    for dataset in sets:
        for i in range(len(dataset)):
            dataset[i]
    return sets


def _epoch_trainer(
    role: str, profile, sets, folder, seed: int = 0, device=None, teacher_int8: bool = False, **changes
) -> Trainer:
    """A :class:`Trainer` of one role of ``profile`` on ``sets`` (:func:`_warm_datasets`): the teacher
    (L_seg) or the KDAS student taught by a teacher of random weights (the time does not depend on
    them), in int8 with ``teacher_int8``."""
    config = TrainConfig.from_profile(profile, seed=seed, progress=False, **changes)
    train_set, val_set = sets
    torch.manual_seed(seed)
    if role == "teacher":
        model, objective = build_teacher(drop_path_rate=config.drop_path_rate), SegmentationObjective()
    else:
        teacher = build_teacher(drop_path_rate=config.drop_path_rate)
        torch.manual_seed(seed)
        model = build_student(drop_path_rate=config.drop_path_rate)
        objective = DistillationObjective(teacher, KDASLoss(**ARMS["kdas"]), teacher_int8=teacher_int8)
    return Trainer(model, train_set, val_set, config, folder, objective=objective, device=device, name=role)


def _timed_fit(role: str, profile, sets, path=speed.NEW, **changes):
    """A fresh :func:`_epoch_trainer` trained under the speed ``path`` in a temporary folder:
    ``(trainer, its fit's result, the fit's wall seconds)``; ``changes`` go to :func:`_epoch_trainer`."""
    with speed.use(path), tempfile.TemporaryDirectory() as tmp:
        trainer = _epoch_trainer(role, profile, sets, tmp, **changes)
        start = time.perf_counter()
        result = trainer.fit(resume=False)
        return trainer, result, time.perf_counter() - start


def epoch_times(profile="standard", max_steps: int | None = None, device=None, **changes) -> dict:
    """Wall seconds of one training epoch (steps, validation, checkpoint) of the teacher and of the
    KDAS student of ``profile`` (a name or a :class:`~kdas_utils.config.Profile`), on today's path
    (:func:`kdas_utils.speed.baseline`) and on the new one, in the same run:
    ``{role: {"baseline": {...}, "new": {...}, "speedup": x}}``.
    ``max_steps`` caps the steps (a shorter estimate; the validation stays whole); ``changes``:
    further :class:`TrainConfig` fields (the smoke test's small size)."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    out = {"profile": profile.name, "max_steps": max_steps}
    cpu = select_device(device).type == "cpu"
    sets = _warm_datasets(profile)
    for role in ("teacher", "student"):
        out[role] = {}
        paths = [("baseline", speed.BASELINE, False), ("new", speed.NEW, False)]
        paths += [("new_int8_teacher", speed.NEW, True)] if role == "student" and cpu else []
        for label, path, int8 in paths:
            print(f"  one {profile.name} {role} epoch, {label} path ...", flush=True)
            trainer, _, wall = _timed_fit(
                role,
                profile,
                sets,
                path,
                device=device,
                teacher_int8=int8,
                epochs=1,
                max_steps_per_epoch=max_steps,
                **changes,
            )
            epoch = trainer.history[0]
            out[role][label] = {
                "epoch_s": wall,
                "train_s": epoch["seconds"],
                "steps": trainer.steps_per_epoch,
                "val_dice": epoch["val_dice"],
                "precision": trainer.precision.name,
            }
        out[role]["speedup"] = out[role]["baseline"]["epoch_s"] / out[role]["new"]["epoch_s"]
        if "new_int8_teacher" in out[role]:
            out[role]["speedup_int8_teacher"] = (
                out[role]["baseline"]["epoch_s"] / out[role]["new_int8_teacher"]["epoch_s"]
            )
    return out


RECIPES = ("standard", "colab", "paper")  # the profiles on the real frames, smallest first


def recipe_epochs(names=RECIPES, max_steps: int | None = None, device=None, **changes) -> dict:
    """What a whole run of each profile in ``names`` costs here: two epochs of its teacher and of its
    KDAS student on the new path (the second epoch without the first's warm-up: cuDNN's choice of
    kernels, the workers' start), and that pace times the profile's epochs. The weights are random
    (the time does not depend on them, and the ImageNet backbones of ``colab`` and ``paper`` cannot be
    had everywhere). ``{name: {"teacher": {...}, "student": {...}, "teacher_run_min", "student_run_min"}}``;
    each role's ``epoch_s`` is one epoch's wall seconds (steps, validation, checkpoint) after the
    warm-up, ``images_per_s`` its training frames per second."""
    out = {}
    for name in names:
        profile = get_profile(name)
        sets = _warm_datasets(profile)
        row = {
            "image_size": profile.image_size,
            "batch_size": profile.batch_size,
            "multi_scale": profile.multi_scale,
            "num_workers": profile.num_workers,
            "max_steps": max_steps,
        }
        for role in ("teacher", "student"):
            print(f"  two {name} {role} epochs ...", flush=True)
            trainer, _, wall = _timed_fit(
                role, profile, sets, device=device, epochs=2, max_steps_per_epoch=max_steps, **changes
            )
            first, second = (h["seconds"] for h in trainer.history)
            row[role] = {
                "epoch_s": (wall - (first - second)) / 2,
                "first_epoch_train_s": first,
                "train_s": second,
                "steps": trainer.steps_per_epoch,
                "images_per_s": trainer.steps_per_epoch * len(trainer.config.sizes()) * profile.batch_size / second,
                "precision": trainer.precision.name,
            }
        trains_teacher = profile.official_teacher != "official"  # colab always distils from the official one
        row["teacher_run_min"] = profile.teacher_epochs * row["teacher"]["epoch_s"] / 60 if trains_teacher else None
        row["student_run_min"] = profile.epochs * row["student"]["epoch_s"] / 60
        out[name] = row
    return out


ROUNDING = 1e-4  # a Dice this close to the spread's end counts as inside it (the paths differ by rounding)


def results_check(profile="standard", epochs: int = 3, seeds: int = 2, device=None, **changes) -> dict:
    """Do the results move? The KDAS student of ``profile`` trained ``epochs`` epochs on today's path
    and on the new one, each with seeds ``0 .. seeds-1``: the best validation Dice of each run, whether
    the new seed-0 run lies within today's seed spread (``[min, max]``, to :data:`ROUNDING`;
    ``within_spread``), whether the new path's mean does (``mean_within_spread``), and the
    differences from today's same-seed run and mean. The teacher is one of random weights drawn from
    the seed (the same on both paths): the check asks whether the code computes the same, not how good
    a student gets. Where a speed-up changes the numbers (bf16, :mod:`kdas_utils.speed`), the same seed
    no longer gives the same run, and only the spread can answer."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    runs, sets = [], _warm_datasets(profile)
    plan = [("baseline", speed.BASELINE, s) for s in range(seeds)] + [("new", speed.NEW, s) for s in range(seeds)]
    for label, path, seed in plan:
        print(f"  {profile.name} KDAS student, {epochs} epochs, {label} path, seed {seed} ...", flush=True)
        trainer, result, seconds = _timed_fit(
            "student", profile, sets, path, seed=seed, device=device, epochs=epochs, **changes
        )
        runs.append(
            {
                "path": label,
                "seed": seed,
                "val_dice": [h["val_dice"] for h in result.history],
                "best_val_dice": result.best_val_dice,
                "precision": trainer.precision.name,
                "seconds": seconds,
            }
        )
    old = [r["best_val_dice"] for r in runs if r["path"] == "baseline"]
    new = [r["best_val_dice"] for r in runs if r["path"] == "new"]
    old_mean, new_mean = sum(old) / len(old), sum(new) / len(new)
    return {
        "profile": profile.name,
        "epochs": epochs,
        "runs": runs,
        "baseline_spread": [min(old), max(old)],
        "new_spread": [min(new), max(new)],
        "new_minus_same_seed_baseline": new[0] - old[0],
        "new_mean_minus_baseline_mean": new_mean - old_mean,
        "within_spread": min(old) - ROUNDING <= new[0] <= max(old) + ROUNDING,
        "mean_within_spread": min(old) - ROUNDING <= new_mean <= max(old) + ROUNDING,
    }


def notebooks_quick(out: Path) -> dict:
    """Wall time of every notebook in the quick profile (a fresh runs folder, so all train)."""
    os.environ["KDAS_PROFILE"] = "quick"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KDAS_RUNS_DIR"] = tmp
        times = run_notebooks(sorted((project_root() / "notebooks").glob("*.ipynb")), Path(tmp))
    return times


def profile_step(batch_size: int = 8, image_size: int = 128, steps: int = 3, rows: int = 25) -> str:
    """``torch.profiler``'s table (operators by self CPU time) of the teacher's training step at the
    standard profile's batch and size: where a step's time goes. ``python -m kdas_utils.bench
    --profile-step`` writes it to ``<out>/profile-teacher-step-<date>.txt``."""
    data = _Synthetic(batch_size, image_size)
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


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m kdas_utils.bench",
        description="Measure KDAS's distillation step, inference and data loading here.",
    )
    parser.add_argument("--out", type=Path, default=project_root() / "benchmarks" / "results")
    parser.add_argument("--quick-only", action="store_true", help="skip the paper-size (16 x 352) step timing")
    parser.add_argument("--notebooks", action="store_true", help="also time every notebook in the quick profile")
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="timed repeats per measurement (median reported)"
    )
    parser.add_argument("--tiny", action="store_true", help="smoke-test settings: small sizes, one repeat")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time the distillation step with torch.compile (the first setting; minutes to compile)",
    )
    parser.add_argument(
        "--profile-step",
        action="store_true",
        help="only write torch.profiler's table of the teacher's training step (standard profile's batch and size)",
    )
    parser.add_argument(
        "--epoch-times",
        action="store_true",
        help="also time one standard-profile epoch of the teacher and of the KDAS student, today's path "
        "(kdas_utils.speed.baseline) and the new one (real frames; about 20 minutes on 2 cores)",
    )
    parser.add_argument("--epoch-steps", type=positive_int, default=None, help="cap the steps of --epoch-times' epochs")
    parser.add_argument(
        "--results-check",
        action="store_true",
        help="also train the standard KDAS student 3 epochs on today's path (seeds 0, 1) and the new one "
        "(seed 0) and compare their validation Dice",
    )
    parser.add_argument(
        "--int8-check",
        type=Path,
        metavar="TEACHER",
        default=None,
        help="only compare the int8 teacher with the fp32 one (this checkpoint) on the standard validation split",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="with --int8-check: also the fp32 teacher under bf16 autocast"
    )
    parser.add_argument(
        "--recipe-epochs",
        action="store_true",
        help="also time two epochs of the teacher and the KDAS student of the standard, colab and paper "
        "profiles (real frames; for a GPU: hours on 2 CPU cores) and what their whole runs cost at that pace",
    )
    parser.add_argument("--no-video", action="store_true", help="skip kdas predict on a video (CPU; needs PyAV)")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--predict",
        action="store_true",
        help="kdas predict on a 1280 x 1024 video in full: torch, onnx and onnx-int8 at each --predict-sizes, "
        "memory on a 10 and a 60 second clip, and with --predict-weights the backends' agreement on the test "
        "frames (without it: onnx and torch at 256 px on an 8 second clip)",
    )
    parser.add_argument("--predict-sizes", type=positive_int, nargs="+", default=[256, 320, 352])
    parser.add_argument("--predict-seconds", type=float, default=20.0, help="length of --predict's clip (default 20)")
    parser.add_argument(
        "--predict-weights", type=Path, help="a trained student (engine checkpoint) for --predict (default: seeded)"
    )
    parser.add_argument("--predict-only", action="store_true", help="only time kdas predict on a video (CPU)")
    args = parser.parse_args(argv)
    checks = args.out / CHECKS
    if args.profile_step:
        checks.mkdir(parents=True, exist_ok=True)
        path = checks / f"profile-teacher-step-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.txt"
        path.write_text(profile_step())
        print(path.read_text())
        print(f"written {path}")
        return 0
    if args.int8_check:
        checks.mkdir(parents=True, exist_ok=True)
        report = _cpu_header()
        report["int8_teacher"] = int8_check(args.int8_check, bf16=args.bf16)
        path = checks / f"int8-teacher-cpu-{_now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["int8_teacher"], indent=2))
        print(f"written {path}")
        return 0
    if args.predict_only:
        args.predict = True  # the full measurement, alone
        checks.mkdir(parents=True, exist_ok=True)
        report = _cpu_header()
        report["predict"] = _predict_section(args)
        path = checks / f"predict-cpu-{_now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(report, indent=2))
        print("\n".join(_predict_lines(report["predict"])))
        print(f"written {path}")
        return 0
    device = select_device(args.device)
    warmup, repeats = (0, 1) if args.tiny else (1, args.repeats)
    settings = [("quick", 8, 128)] if args.tiny or args.quick_only else [("paper", 16, 352), ("quick", 8, 128)]
    if args.tiny:
        settings = [("tiny", 2, 64)]
    report = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "precision": choose_precision(device).name,
        "cpu_native_bf16": cpu_has_native_bf16() if device.type == "cpu" else None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repeats": repeats,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = ("tiny-" if args.tiny else "") + ("cuda" if device.type == "cuda" else device.type)
    path = args.out / f"{stem}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"

    def save():  # after each part, so that a run stopped half-way keeps what it measured
        path.write_text(json.dumps(report, indent=2))

    report["steps"] = {}
    for name, batch, size in settings:
        print(f"distillation step, {name}: batch {batch}, {size} px ...", flush=True)
        report["steps"][name] = {"batch": batch, "image_size": size, **step_times(batch, size, device, warmup, repeats)}
    name, batch, size = settings[0]  # the main setting: the paper's, or the quick one with --quick-only
    report["distill_step_ratio_to_bound"] = report["steps"][name]["ratio_to_bound"]
    print(f"distillation step, {name}, today's path (kdas_utils.speed.baseline) ...", flush=True)
    with speed.baseline():
        report["steps_baseline"] = {
            name: {"batch": batch, "image_size": size, **step_times(batch, size, device, warmup, repeats)}
        }
    report["baseline_switches_off"] = speed.BASELINE.off()  # what "today's path" leaves out
    report["distill_step_ratio_to_old_bound"] = (
        report["steps"][name]["distill_step_s"] / report["steps_baseline"][name]["bound_s"]
    )
    report["epoch_speedup_teacher"] = report["epoch_speedup_student"] = None
    save()
    print("inference ...", flush=True)
    report["inference"] = inference(device, 64 if args.tiny else 352, 2 if args.tiny else 16, warmup, repeats)
    report["student_teacher_latency_ratio"] = report["inference"]["student_teacher_latency_ratio"]
    save()
    if args.recipe_epochs:
        print("recipe epochs ...", flush=True)
        report["recipes"] = recipe_epochs(max_steps=2 if args.tiny else args.epoch_steps, device=device)
        save()
    small = get_profile("quick").replace(image_size=64, batch_size=2) if args.tiny else "standard"
    if args.epoch_times:
        print("epoch times ...", flush=True)
        report["epochs"] = epoch_times(small, 2 if args.tiny else args.epoch_steps, device)
        report["epoch_speedup_teacher"] = report["epochs"]["teacher"]["speedup"]
        report["epoch_speedup_student"] = report["epochs"]["student"]["speedup"]
        save()
    if args.results_check:
        print("results check ...", flush=True)
        tiny = {"max_steps_per_epoch": 2} if args.tiny else {}
        report["results_check"] = results_check(small, 1 if args.tiny else 3, device=device, **tiny)
        save()
    if args.compile:
        print(f"distillation step, {name}, torch.compile ...", flush=True)
        on = step_times(batch, size, device, max(warmup, 1), repeats, compile=True)
        off = report["steps"][name]
        report["compile"] = {
            "setting": name,
            "eager_s": off["distill_step_s"],
            "compiled_s": on["distill_step_s"],
            "speedup": off["distill_step_s"] / on["distill_step_s"],
            "compiled": on,
        }
        save()
    report["predict"] = None
    if args.predict or not args.no_video:
        print("kdas predict on a video ...", flush=True)
        report["predict"] = _predict_section(args)
        save()
    print("data loading ...", flush=True)
    report["data_loading"] = data_loading("quick", batches=2 if args.tiny else 20)
    report["notebooks_quick_seconds"] = notebooks_quick(args.out) if args.notebooks else None
    report["series_quick_seconds"] = sum(report["notebooks_quick_seconds"].values()) if args.notebooks else None
    save()
    print(summary(report))
    print(f"written {path}")
    for earlier in archive_earlier_runs(path):
        print(f"moved the earlier run {earlier.name} to {earlier.parent}")
    return 0


def _predict_section(args) -> dict:
    """The ``predict`` section: :func:`kdas_utils.bench_predict.predict_speed` in full with ``--predict``,
    a short one otherwise (``--tiny``: a second of video at 64 px)."""
    if args.tiny:
        return predict_speed(seconds=1, sizes=(64,), backends=("torch", "onnx"), batch=2)
    if not args.predict:
        return predict_speed(seconds=8, sizes=(256,), backends=("torch", "onnx"))
    section = predict_speed(args.predict_weights, args.predict_seconds, tuple(args.predict_sizes), memory=True)
    if args.predict_weights:
        section["tolerance"] = tolerance(args.predict_weights, tuple(args.predict_sizes))
    return section


CHECKS = "checks"  # <out>/checks/: the one-off checks
EARLIER = "earlier"  # <out>/earlier/: the runs a newer run of the same device replaced


def archive_earlier_runs(path: Path) -> list[Path]:
    """Move the other ``<device>-<date>.json`` runs beside ``path`` (same device) into ``earlier/``.

    So the newest CPU (or CUDA) run is the only one of its name in the results folder, whichever way
    an outside check orders the files. Returns the new paths."""
    stem = path.name.rsplit("-", 2)[0]  # "cpu-20261204-124505.json" -> "cpu"
    moved = []
    for other in sorted(path.parent.glob(f"{stem}-*.json")):
        if other != path and other.name.rsplit("-", 2)[0] == stem:
            target = path.parent / EARLIER / other.name
            target.parent.mkdir(exist_ok=True)
            other.replace(target)
            moved.append(target)
    return moved


def _cpu_header() -> dict:
    """The top of a CPU-only report: ``device``, ``torch`` and ``date``."""
    return {"device": _cpu_name(), "torch": torch.__version__, "date": _now().isoformat(timespec="seconds")}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cpu_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _predict_lines(p: dict) -> list[str]:
    """The Markdown rows of the ``predict`` section (:func:`kdas_utils.bench_predict.predict_speed`)."""
    lines = []
    for key, r in p.items():
        if key == "memory":
            short, long = r["seconds"]
            lines.append(
                f"| kdas predict, peak memory, {r['backend']} at {r['size']} px: {short:g} s / {long:g} s clip | "
                f"{r['peak_rss_mb_short']:.0f} / {r['peak_rss_mb_long']:.0f} MB "
                f"({r['memory_ratio_long_to_short']:.2f}x) |"
            )
        elif "end_to_end_fps" in r:
            lines.append(
                f"| kdas predict, 1280 x 1024 video, {r['backend']} at {r['size']} px, batch {r['batch']} | "
                f"{r['end_to_end_fps']:.1f} frames/s end to end, {r['network_fps']:.1f} the network alone "
                f"({r['ratio']:.2f}x); {r['peak_rss_mb']:.0f} MB; {r['bytes_per_frame'] / 1e3:.1f} kB a frame in "
                f"{r['files_per_video']} files |"
            )
    return lines


def _minutes(value: float | None) -> str:
    return "not trained in this profile" if value is None else f"{value:.1f} min"


def summary(report: dict) -> str:
    """The report as a Markdown table (what the README shows)."""
    lines = [
        f"device: {report['device']}, torch {report['torch']}, {report['precision']}",
        "",
        "| measurement | value |",
        "| --- | --- |",
    ]
    for name, s in report["steps"].items():
        lines += [
            f"| distillation step, {name} ({s['batch']} x {s['image_size']} px) | {s['distill_step_s']:.3f} s "
            f"({s['distill_images_per_s']:.1f} img/s) |",
            f"| its bound: teacher forward + student step | {s['teacher_forward_s']:.3f} + {s['student_step_s']:.3f} "
            f"= {s['bound_s']:.3f} s |",
            f"| ratio to the bound | {s['ratio_to_bound']:.2f} |",
        ]
    inf = report["inference"]
    for name in ("teacher", "student"):
        values = ", ".join(f"{k} {v:.1f}" for k, v in inf[name].items())
        lines.append(f"| {name} inference | {values} |")
    lines += [
        f"| student / teacher latency ratio (batch 1) | {inf['student_teacher_latency_ratio']:.2f}x faster |",
        f"| peak RSS | {inf['peak_rss_mb']:.0f} MB |",
        f"| data loading, one process ({report['data_loading']['profile']}, "
        f"{report['data_loading']['image_size']} px) | "
        f"{report['data_loading']['cold_images_per_s']:.0f} img/s cold, "
        f"{report['data_loading']['warm_images_per_s']:.0f} img/s from the cache |",
    ]
    step = report["steps"].get("quick")
    if step:
        lines.append(f"| images/s the quick distillation step consumes | {step['distill_images_per_s']:.1f} |")
    if report.get("compile"):
        c = report["compile"]
        lines.append(
            f"| distillation step, {c['setting']}: eager / torch.compile | {c['eager_s']:.3f} s / "
            f"{c['compiled_s']:.3f} s ({c['speedup']:.2f}x) |"
        )
    for name, s in report.get("steps_baseline", {}).items():
        lines.append(
            f"| distillation step, {name}: new / today's bound ({s['teacher_forward_s']:.3f} + "
            f"{s['student_step_s']:.3f} s) | {report['distill_step_ratio_to_old_bound']:.2f} |"
        )
    for role in ("teacher", "student"):
        e = report.get("epochs", {}).get(role)
        if e:
            lines.append(
                f"| one {report['epochs']['profile']} {role} epoch ({e['new']['steps']} steps + validation): "
                f"today / new | {e['baseline']['epoch_s']:.0f} s / {e['new']['epoch_s']:.0f} s ({e['speedup']:.2f}x) |"
            )
            if "new_int8_teacher" in e:
                lines.append(
                    f"| the same, new, int8 teacher (--teacher-int8) | {e['new_int8_teacher']['epoch_s']:.0f} s "
                    f"({e['speedup_int8_teacher']:.2f}x) |"
                )
    for name, r in (report.get("recipes") or {}).items():
        scales = "multi-scale" if r["multi_scale"] else "one scale"
        for role in ("teacher", "student"):
            e = r[role]
            lines.append(
                f"| one {name} {role} epoch ({r['batch_size']} x {r['image_size']} px, {scales}, {e['steps']} steps "
                f"+ validation) | {e['epoch_s']:.1f} s ({e['images_per_s']:.0f} img/s in training); the whole "
                f"{name} {role} run: {_minutes(r[f'{role}_run_min'])} |"
            )
    if report.get("results_check"):
        r = report["results_check"]
        lo, hi = r["baseline_spread"]
        new = [run["best_val_dice"] for run in r["runs"] if run["path"] == "new"]
        lines.append(
            f"| {r['epochs']}-epoch KDAS student, best val Dice: new seeds / today's seeds | "
            f"{', '.join(f'{d:.4f}' for d in new)} / [{lo:.4f}, {hi:.4f}]: seed 0 "
            f"{'within' if r['within_spread'] else 'outside'}, mean "
            f"{'within' if r['mean_within_spread'] else 'outside'} today's spread |"
        )
    if report.get("predict"):
        lines += _predict_lines(report["predict"])
    if report.get("series_quick_seconds") is not None:
        lines.append(f"| notebook series, quick profile | {report['series_quick_seconds']:.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
