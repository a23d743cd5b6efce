"""``python -m kdas_utils.bench``: the options, and the order in which the parts are measured and saved."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import speed
from ..arguments import OneLineParser, positive_int
from ..bench_predict import SOURCES, predict_speed, tolerance
from ..config import get_profile, project_root
from ..engine import (
    choose_precision,
    cpu_has_native_bf16,
    select_device,
)
from ..plots import plot_predict_cpu, save_figure
from .epochs import epoch_times, int8_check, notebooks_quick, recipe_epochs, results_check
from .report import CHECKS, archive_earlier_runs, cpu_header, now, predict_lines, summary
from .steps import data_loading, inference, profile_step, step_times

PREDICT_FIGURE = "predict-cpu"  # benchmarks/results/predict-cpu.png: the newest full --predict run's CPU a frame


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
        "(kdas_utils.speed.BASELINE) and the new one (real frames; about 20 minutes on 2 cores)",
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
        "each also with nothing written, onnx on 1350 x 1080 and 1920 x 1080 clips, memory on a 10 and a 60 "
        "second clip, a figure of where the CPU goes (predict-cpu.png beside the JSON), and with "
        "--predict-weights the backends' agreement on the test frames (without it: onnx and torch at 256 px "
        "on an 8 second clip)",
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
        report = cpu_header()
        report["int8_teacher"] = int8_check(args.int8_check, bf16=args.bf16)
        path = checks / f"int8-teacher-cpu-{now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["int8_teacher"], indent=2))
        print(f"written {path}")
        return 0
    if args.predict_only:
        args.predict = True  # the full measurement, alone
        checks.mkdir(parents=True, exist_ok=True)
        report = cpu_header()
        report["predict"] = _predict_section(args)
        path = checks / f"predict-cpu-{now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(report, indent=2))
        print("\n".join(predict_lines(report["predict"])))
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
    print(f"distillation step, {name}, today's path (kdas_utils.speed.BASELINE) ...", flush=True)
    old = step_times(batch, size, device, warmup, repeats, path=speed.BASELINE)
    report["steps_baseline"] = {name: {"batch": batch, "image_size": size, **old}}
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
        if args.predict and not args.tiny:  # the full measurement: its figure beside the JSON, the newest only
            figure = save_figure(plot_predict_cpu(report["predict"]), PREDICT_FIGURE, folder=path.parent)
            print(f"figure {figure}")
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
    sizes = tuple(args.predict_sizes)
    section = predict_speed(args.predict_weights, args.predict_seconds, sizes, memory=True, sources=SOURCES)
    if args.predict_weights:
        section["tolerance"] = tolerance(args.predict_weights, tuple(args.predict_sizes))
    return section
