import json

import pytest
import torch

from kdas_utils import bench, engine
from kdas_utils.plots import plot_predict_cpu


def test_harness_smoke_run_writes_the_stable_keys(tmp_path, monkeypatch, small_synthetic):
    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(small_synthetic))
    for part in (bench.command, bench.epochs, bench.steps):  # the fixture's 24-frame synthetic set
        monkeypatch.setattr(part, "get_profile", _small)
    earlier = tmp_path / "tiny-cpu-20000101-000000.json"  # an earlier run of this device, and one of another
    earlier.write_text("{}")
    (tmp_path / "tiny-cuda-20000101-000000.json").write_text("{}")
    argv = ["--tiny", "--out", str(tmp_path), "--device", "cpu", "--epoch-times", "--results-check"]
    assert bench.main(argv) == 0
    (path,) = tmp_path.glob("tiny-cpu-*.json")  # the newest run of the device is the only one left here
    assert path != earlier and (tmp_path / "earlier" / earlier.name).read_text() == "{}"
    assert (tmp_path / "tiny-cuda-20000101-000000.json").exists()
    report = json.loads(path.read_text())
    for key in (
        "device",
        "torch",
        "distill_step_ratio_to_bound",
        "student_teacher_latency_ratio",
        "series_quick_seconds",
        "predict",
        "distill_step_ratio_to_old_bound",
        "epoch_speedup_teacher",
        "epoch_speedup_student",
    ):
        assert key in report
    for role in ("teacher", "student"):  # today's epoch time / the new one, both measured in this run
        epoch = report["epochs"][role]
        assert report[f"epoch_speedup_{role}"] == epoch["baseline"]["epoch_s"] / epoch["new"]["epoch_s"] > 0
        assert epoch["baseline"]["steps"] == epoch["new"]["steps"] == 2
    assert report["baseline_switches_off"] == ["fused_adamw", "lean_validation", "cpu_bf16"]
    assert report["cpu_native_bf16"] == engine.cpu_has_native_bf16()
    assert {report["epochs"][role]["baseline"]["precision"] for role in ("teacher", "student")} == {"fp32"}
    old_bound = report["steps_baseline"]["tiny"]["bound_s"]
    assert report["distill_step_ratio_to_old_bound"] == report["steps"]["tiny"]["distill_step_s"] / old_bound
    check = report["results_check"]
    assert [(r["path"], r["seed"]) for r in check["runs"]] == [("baseline", 0), ("baseline", 1), ("new", 0), ("new", 1)]
    lo, hi = check["baseline_spread"]
    new = [r["best_val_dice"] for r in check["runs"][2:]]
    assert check["within_spread"] == (lo - bench.ROUNDING <= new[0] <= hi + bench.ROUNDING)
    assert check["mean_within_spread"] == (lo - bench.ROUNDING <= sum(new) / 2 <= hi + bench.ROUNDING)
    assert check["new_spread"] == [min(new), max(new)]
    assert "today / new" in bench.summary(report) and "today's seeds" in bench.summary(report)
    for backend in ("torch", "onnx"):  # a second of 1280 x 1024 video at 25 frames/s, through kdas predict
        video = report["predict"][f"{backend}-64"]
        assert video["backend"] == backend and video["frames"] == 25 and video["files_per_video"] == 2
        assert video["ratio"] == video["end_to_end_fps"] / video["network_fps"] and video["end_to_end_fps"] > 0
        assert video["peak_rss_mb"] > 100 and video["bytes_per_frame"] > 0
    assert "| kdas predict, 1280 x 1024 video, onnx at 64 px, batch 2 |" in bench.summary(report)
    assert report["distill_step_ratio_to_bound"] > 0 and report["student_teacher_latency_ratio"] > 0
    assert report["series_quick_seconds"] is None  # notebooks are timed only with --notebooks
    step = report["steps"]["tiny"]
    assert step["bound_s"] == step["teacher_forward_s"] + step["student_step_s"]
    assert "| ratio to the bound |" in bench.summary(report)


def _small(name):
    from kdas_utils.config import get_profile

    return get_profile(name).replace(synthetic_train=24, synthetic_test=6)


def test_the_step_profile_names_the_operators():
    from kdas_utils.bench import profile_step

    table = profile_step(batch_size=2, image_size=64, steps=1, rows=10)
    assert table.startswith(f"torch {torch.__version__}") and "batch 2, 64 px" in table
    assert "Self CPU" in table and "aten::mm" in table  # the matrix products of the attention and MLP layers


def test_recipe_epochs_time_two_epochs_and_scale_them_to_the_whole_run(monkeypatch, small_synthetic):
    """What --recipe-epochs reports (the GPU's whole-run times come from it): the second epoch's pace
    times each profile's epochs; a profile that distils from the official teacher trains none."""
    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(small_synthetic))
    small = {
        "own": _small("quick").replace(image_size=64, batch_size=4, teacher_epochs=8, epochs=3),
        "official": _small("quick").replace(image_size=64, batch_size=4, epochs=5, official_teacher="official"),
    }
    monkeypatch.setattr(bench.epochs, "get_profile", small.__getitem__)
    report = bench.recipe_epochs(names=("own", "official"), max_steps=2, device="cpu")
    for name, row in report.items():
        assert (row["image_size"], row["batch_size"], row["max_steps"]) == (64, 4, 2)
        for role in ("teacher", "student"):
            epoch = report[name][role]
            assert epoch["steps"] == 2 and epoch["images_per_s"] == 2 * 4 / epoch["train_s"]
            assert epoch["epoch_s"] > 0 and epoch["first_epoch_train_s"] > 0
        assert row["student_run_min"] == small[name].epochs * row["student"]["epoch_s"] / 60
    assert report["own"]["teacher_run_min"] == 8 * report["own"]["teacher"]["epoch_s"] / 60
    assert report["official"]["teacher_run_min"] is None
    lines = bench.summary(
        {
            "device": "cpu",
            "torch": "x",
            "precision": "fp32",
            "steps": {},
            "recipes": report,
            "inference": {"teacher": {}, "student": {}, "student_teacher_latency_ratio": 1.0, "peak_rss_mb": 1.0},
            "data_loading": {"profile": "quick", "image_size": 64, "cold_images_per_s": 1.0, "warm_images_per_s": 1.0},
        }
    )
    assert "the whole official teacher run: not trained in this profile" in lines
    assert "one own student epoch (4 x 64 px, one scale, 2 steps + validation)" in lines


def test_the_predict_section_measures_memory_on_a_short_and_a_long_clip(monkeypatch):
    from kdas_utils import bench_predict

    section = bench_predict.predict_speed(
        seconds=1, sizes=(64,), backends=("torch",), batch=2, memory=True, memory_seconds=(1, 2), sources=((96, 80),)
    )
    memory = section["memory"]
    assert memory["backend"] == "torch" and memory["seconds"] == [1, 2]
    assert memory["memory_ratio_long_to_short"] == memory["peak_rss_mb_long"] / memory["peak_rss_mb_short"] > 0
    assert "1 s / 2 s clip" in "\n".join(bench.report.predict_lines(section))
    row = section["torch-64"]  # the same pipeline with nothing written: frames all through, none on disk
    assert row["no_outputs_fps"] > 0 and row["no_outputs_cpu_ms_per_frame"]["all"] > 0
    assert row["no_outputs_ratio"] == pytest.approx(row["no_outputs_fps"] / row["network_fps"])
    assert "nothing written:" in "\n".join(bench.report.predict_lines(section))
    other = section["sources"]["96x80"]  # a clip of another frame size, on the CPU's default backend
    assert other["backend"] == "onnx" and other["frames"] == 25 and other["end_to_end_fps"] > 0
    assert "| kdas predict, 96 x 80 video, onnx at 64 px, batch 2 |" in "\n".join(bench.report.predict_lines(section))
    figure = plot_predict_cpu(section)  # ONNX rows only (PyTorch's network runs in its own pool, not counted)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "onnx-64, 96 x 80 clip",
        "onnx-64, 96 x 80 clip, nothing written",
    ]
    widths = [
        sum(bar.get_width() for bar in ax.patches if abs(bar.get_y() + bar.get_height() / 2 - y) < 0.01) for y in (0, 1)
    ]
    cpu = (other["cpu_ms_per_frame"]["all"], other["no_outputs_cpu_ms_per_frame"]["all"])
    assert widths == pytest.approx(cpu)  # each bar: the parts of a frame's CPU, end to end
    assert ax.lines[0].get_xdata()[0] == pytest.approx(other["network_cpu_ms_alone"] / 0.85)
    stages = section["stages"]  # what each step around the network costs a frame, on one core
    steps = ("decode", "to_rgb", "prepare", "finish", "overlay", "overlay_video", "mask_video")
    assert stages["frames"] == 25 and all(stages[step] > 0 for step in steps)
    assert stages["total"] == pytest.approx(sum(stages[step] for step in steps))
    assert any(line.startswith("| kdas predict, around the network") for line in bench.report.predict_lines(section))


def test_a_childs_peak_memory_is_its_own():
    """``ru_maxrss`` survives ``exec`` on Linux: a measuring child started by a large process reported
    the parent's peak (4.3 GB for every backend in a bench run). ``peak_rss_mb`` reads the child's own."""
    import subprocess
    import sys

    from kdas_utils import bench_predict

    held = bytearray(2500 * 1024 * 1024)  # this process: at least 2.5 GB resident (bytearray writes its zeros)
    code = "from kdas_utils.bench_predict import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert bench_predict.peak_rss_mb() > 2500 and 50 < child < 2000, (len(held), child)


def test_two_empty_masks_agree_and_disjoint_ones_do_not():
    import numpy as np

    from kdas_utils.bench_predict import _agreement

    empty, full = np.zeros((8, 8), bool), np.ones((8, 8), bool)
    assert _agreement(empty, empty) == 1.0 and _agreement(full, full) == 1.0
    assert _agreement(empty, full) == 0.0 and _agreement(full[:, :4].repeat(2, 1), full) == 1.0
