"""The bench's files and tables: the JSON header, the archive of earlier runs, the Markdown summary."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..bench_predict import STAGES

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


def cpu_header() -> dict:
    """The top of a CPU-only report: ``device``, ``torch`` and ``date``."""
    return {"device": cpu_name(), "torch": torch.__version__, "date": now().isoformat(timespec="seconds")}


def now() -> datetime:
    return datetime.now(timezone.utc)


def cpu_name() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def predict_lines(p: dict) -> list[str]:
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
        elif key == "stages":
            steps = ", ".join(f"{k} {v:.1f}" for k, v in r.items() if k in STAGES)
            overlay = "x".join(map(str, r.get("overlay_size") or ())) or "the frame's size"
            lines.append(
                f"| kdas predict, around the network, one core, {r['size']} px, overlay video {overlay}: ms a frame | "
                f"{r['total']:.1f} ({steps}) |"
            )
        elif key == "sources":
            lines += [_video_line(row, source.replace("x", " x ")) for source, row in r.items()]
        elif "end_to_end_fps" in r:
            lines.append(_video_line(r, "1280 x 1024"))
    return lines


def _video_line(r: dict, source: str) -> str:
    return (
        f"| kdas predict, {source} video, {r['backend']} at {r['size']} px, batch {r['batch']} | "
        f"{r['end_to_end_fps']:.1f} frames/s end to end, {r['network_fps']:.1f} the network alone "
        f"({r['ratio']:.2f}x); {r['peak_rss_mb']:.0f} MB; {r['bytes_per_frame'] / 1e3:.1f} kB a frame in "
        f"{r['files_per_video']} files" + _nothing_written(r) + " |"
    )


def _nothing_written(r: dict) -> str:
    """The pipeline's speed with nothing written, where the row has it (bench runs since 2026-12-07 evening)."""
    if "no_outputs_fps" not in r:
        return ""
    return f"; nothing written: {r['no_outputs_fps']:.1f} frames/s ({r['no_outputs_ratio']:.2f}x)"


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
        lines += predict_lines(report["predict"])
    if report.get("series_quick_seconds") is not None:
        lines.append(f"| notebook series, quick profile | {report['series_quick_seconds']:.0f} s |")
    return "\n".join(lines)
