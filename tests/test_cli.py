import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import one_line_error, run_main

from kdas_utils import config
from kdas_utils.cli import main
from kdas_utils.cli.studies import side_by_side
from kdas_utils.data import eval_transforms, read_image
from kdas_utils.errors import KDASError
from kdas_utils.models import build_student

KDAS = Path(sys.executable).with_name("kdas")
SUBCOMMANDS = ("prepare-data", "train-teacher", "distill", "study", "evaluate", "export")


def run_kdas(*args):
    return subprocess.run([str(KDAS), *args], capture_output=True, text=True, timeout=120)


def test_help_of_the_command_and_every_subcommand(capsys):
    assert KDAS.exists(), "the package installs a `kdas` command (pip install -e .)"
    top = run_kdas("--help")  # the installed command once; each subcommand's help in this process
    assert top.returncode == 0 and all(name in top.stdout for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as stopped:
            main([name, "--help"])
        out = capsys.readouterr().out
        assert stopped.value.code == 0 and out.startswith(f"usage: kdas {name}"), name
        assert "--profile" in out


def test_bad_arguments_say_what_to_type(capsys):
    result = run_main(capsys, "distill", "--arm", "kd")
    assert result.returncode == 2 and "argument --arm: invalid choice: 'kd' (choose from" in result.stderr
    assert all(arm in result.stderr for arm in ("no-kd", "at", "sgm", "kdas", "released"))
    result = run_main(capsys, "train-teacher", "--profile", "fast")
    assert result.returncode == 2 and "invalid choice: 'fast'" in result.stderr and "standard" in result.stderr
    result = run_main(capsys, "study", "--retrain")  # the study loads every finished run; it had no effect there
    assert result.returncode == 2 and "unrecognized arguments: --retrain" in result.stderr


@pytest.fixture
def user_env(tmp_path, monkeypatch):
    """An empty runs folder and a data root that does not exist, for the real command."""
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDAS_DATA_ROOT", str(tmp_path / "no-data"))
    return tmp_path


def user_errors(tmp: Path) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(arguments, phrases of the one-line error)`` of a user's mistakes that only the command's
    work finds (a file that is not a checkpoint, no data, nothing trained yet), with the files they
    name written under ``tmp``."""
    (tmp / "corrupt.pth").write_bytes(b"this is not a weight file")
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp / "other.pth")
    corrupt, other = str(tmp / "corrupt.pth"), str(tmp / "other.pth")
    return [
        (("evaluate", "--profile", "quick", "--weights", corrupt), ("corrupt.pth", "not a PyTorch weight file")),
        (("evaluate", "--profile", "quick", "--weights", other), ("other.pth", "not a Polyp-PVT-format checkpoint")),
        (
            ("evaluate", "--profile", "quick", "--checkpoint", corrupt),
            ("corrupt.pth", "cannot be read as a checkpoint"),
        ),
        (("train-teacher", "--profile", "standard"), ("no-data", "no TrainDataset/", "KDAS_DATA_ROOT")),
        (
            ("evaluate", "--profile", "quick"),
            ("no checkpoint of the 'quick' profile", "kdas train-teacher --profile quick"),
        ),
        (("distill", "--profile", "quick", "--ablation", "kd=1"), ("plan item 'kd=1': write ARM=SEEDS",)),
        (
            ("distill", "--profile", "quick", "--ablation", "finished"),
            ("no finished student run of the 'quick' profile yet",),
        ),
        (
            ("distill", "--profile", "quick", "--teacher-epoch", "3", "--epochs", "1"),
            ("no teacher snapshot of epoch 3",),
        ),
        (("export", "--profile", "quick"), ("does not exist; train it first",)),
    ]


def test_user_errors_end_in_one_line(user_env, capsys):
    for args, phrases in user_errors(user_env):
        one_line_error(run_main(capsys, *args), args[0], *phrases)


@pytest.mark.slow
def test_errors_through_the_real_command(user_env):
    """The installed ``kdas`` (its own interpreter: no warning of an import on stderr, the exit status
    of ``sys.exit(main())``): two errors that the work finds, two options out of their range (the
    parser's), and ``--debug``'s traceback; the processes run side by side."""
    work = user_errors(user_env)
    ranged = [
        ((args[0], "--profile", "quick", *args[1:]), (says,)) for args, says in (OUT_OF_RANGE[0], OUT_OF_RANGE[-1])
    ]
    cases = [work[0], work[3], *ranged]
    debug = ("evaluate", "--profile", "quick", "--debug", "--weights", str(user_env / "corrupt.pth"))
    commands = [[str(KDAS), *args] for args in (*(args for args, _ in cases), debug)]
    running = [
        subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for command in commands
    ]
    outputs = [process.communicate(timeout=300) for process in running]  # then each has its returncode
    results = [subprocess.CompletedProcess(p.args, p.returncode, *output) for p, output in zip(running, outputs)]
    for (args, phrases), result in zip(cases, results):
        one_line_error(result, args[0], *phrases)
    assert results[-1].returncode != 0 and "Traceback" in results[-1].stderr
    assert "WeightLoadError" in results[-1].stderr  # --debug: the whole traceback


def test_a_corrupt_mask_is_named_in_one_line(tmp_path, monkeypatch, capsys):
    from kdas_utils.data import make_synthetic

    root = make_synthetic(tmp_path / "synthetic", seed=0, n_train=8, n_test=4)
    mask = sorted((root / "TrainDataset" / "masks").iterdir())[0]
    mask.write_bytes(b"not a png")
    monkeypatch.setenv("KDAS_DATA_ROOT", str(root))  # the standard profile reads it as real data
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    one_line_error(run_main(capsys, "prepare-data", "--profile", "standard"), "prepare-data", mask.name)


def test_non_positive_epochs_are_refused_by_the_parser(capsys):
    for value in ("0", "-3", "two"):
        with pytest.raises(SystemExit):
            main(["distill", "--profile", "quick", "--epochs", value])
        assert "argument --epochs:" in capsys.readouterr().err, value
    for value, says in (
        ("0", "0 is not in (0, 1]"),
        ("1.5", "1.5 is not in (0, 1]"),
        ("half", "'half' is not a number"),
    ):
        with pytest.raises(SystemExit):
            main(["distill", "--profile", "quick", "--label-fraction", value])
        assert f"argument --label-fraction: {says}" in capsys.readouterr().err, value


# Every option with a valid range, refused by the parser (before any work) in one line with exit status 2.
OUT_OF_RANGE = [
    (("distill", "--alpha", "1.5"), "argument --alpha: 1.5 is not in [0, 1]"),
    (("distill", "--alpha", "-0.1"), "argument --alpha: -0.1 is not in [0, 1]"),
    (("distill", "--alpha", "nan"), "argument --alpha: nan is not in [0, 1]"),
    (("distill", "--tau", "0"), "argument --tau: 0 is not positive"),
    (("distill", "--tau", "warm"), "argument --tau: 'warm' is not a number"),
    (("distill", "--label-fraction", "0"), "argument --label-fraction: 0 is not in (0, 1]"),
    (("distill", "--label-fraction", "1.5"), "argument --label-fraction: 1.5 is not in (0, 1]"),
    (("distill", "--epochs", "0"), "argument --epochs: 0 is not positive"),
    (("train-teacher", "--epochs", "-3"), "argument --epochs: -3 is not positive"),
    (("study", "--epochs", "two"), "argument --epochs: 'two' is not a whole number"),
    (("distill", "--teacher-epoch", "0"), "argument --teacher-epoch: 0 is not positive"),
    (("distill", "--seed", "-1"), "argument --seed: -1 is negative"),
    (("export", "--seed", "1.5"), "argument --seed: '1.5' is not a whole number"),
    (("study", "--seeds", "0"), "argument --seeds: 0 is not positive"),
    (("export", "--image-size", "100"), "argument --image-size: 100 is not a positive multiple of 32"),
    (("export", "--image-size", "0"), "argument --image-size: 0 is not a positive multiple of 32"),
]


@pytest.mark.parametrize("args, says", OUT_OF_RANGE, ids=[" ".join(a) for a, _ in OUT_OF_RANGE])
def test_every_range_is_checked_by_the_parser_before_any_work(user_env, capsys, args, says):
    command = args[0]
    with pytest.raises(SystemExit) as stopped:
        main([args[0], "--profile", "quick", *args[1:]])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"kdas {command}: error: {lines[0].split(': error: ', 1)[1]}"], lines
    assert says in lines[0] and lines[0].endswith(f"(see kdas {command} --help)")
    assert not (user_env / "runs").exists()  # nothing was started: no run folder, no teacher


def test_the_bench_checks_its_repeats():
    result = subprocess.run(
        [sys.executable, "-m", "kdas_utils.bench", "--repeats", "0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "python -m kdas_utils.bench: error: argument --repeats: 0 is not positive; give at least 1 "
        "(see python -m kdas_utils.bench --help)"
    ]


@pytest.mark.slow
def test_quick_pipeline_from_the_terminal(tmp_path, monkeypatch, capsys):
    """prepare-data, train-teacher, distill, evaluate and export, one epoch each, in the quick profile."""
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    # a teacher of one epoch: else distill would resume it to the profile's teacher_epochs (8)
    monkeypatch.setitem(config.PROFILES, "quick", config.PROFILES["quick"].replace(teacher_epochs=1))
    assert main(["prepare-data", "--profile", "quick"]) == 0
    assert "240 training pairs" in capsys.readouterr().out
    # distil first: the missing teacher is announced and trained before the student
    assert main(["distill", "--profile", "quick", "--epochs", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    announced = out.index("the kdas student learns from the quick teacher, which is not trained yet: training it first")
    planned = out.index("teacher: training 1 epoch (quick profile, 64 px) into checkpoints/teacher-quick;")
    assert announced < planned < out.index("student-kdas-s0: training 1 epoch (quick profile, 64 px)")
    assert "student kdas (seed 0): trained" in out
    assert main(["train-teacher", "--profile", "quick", "--epochs", "1", "--device", "cpu"]) == 0
    assert "teacher: checkpoint ->" in capsys.readouterr().out  # trained by distill above, now loaded
    summary = json.loads((tmp_path / "runs" / "checkpoints" / "teacher-quick" / "summary.json").read_text())
    assert summary["epochs"] == 1 and 0 <= summary["val_mean_dice"] <= 1  # written by runs.summarize_teacher
    assert main(["distill", "--profile", "quick", "--arm", "no-kd", "--epochs", "1", "--label-fraction", "0.5"]) == 0
    assert "student-no-kd-l0.5-s0-quick/best.pt" in capsys.readouterr().out  # half the masks: a run of its own
    trained = sorted((tmp_path / "runs" / "checkpoints").iterdir())
    assert main(["study", "--profile", "quick", "--export-only", "--export", str(tmp_path / "results")]) == 0
    assert sorted((tmp_path / "runs" / "checkpoints").iterdir()) == trained  # --export-only trains nothing
    curve = (tmp_path / "results" / "study-quick" / "teacher-curve.csv").read_text().splitlines()
    assert len(curve) == 2  # a header and the one epoch
    assert capsys.readouterr().out.endswith(
        ": curves.png, teacher-curve.csv, unseen-arms.csv, unseen.csv, unseen.png\n"
    )  # the curve and the unseen step (the quick profile has its Synthetic-Shift set)
    assert main(["evaluate", "--profile", "quick", "--device", "cpu"]) == 0
    table = (tmp_path / "runs" / "evaluation-quick" / "evaluation.md").read_text()
    assert "| teacher | Synthetic |" in table and "| KDAS student | Synthetic-Shift |" in table
    out = tmp_path / "student.onnx"
    assert main(["export", "--profile", "quick", "--image-size", "128", "--out", str(out)]) == 0
    assert out.stat().st_size > 1_000_000


def test_onnx_student_matches_pytorch_on_a_real_frame(real_pair, tmp_path):
    from kdas_utils.export import OnnxPredictor, ProbabilityModel, export_onnx

    torch.manual_seed(0)
    student = build_student().eval()
    path = export_onnx(student, tmp_path / "student.onnx", image_size=352)
    image = eval_transforms(352)(image=read_image(real_pair[0]))["image"][None].float()
    batch = torch.cat([image, image.flip(-1), image.flip(-2)])  # a batch of 3: the batch size is dynamic
    onnx_out = OnnxPredictor(path)(batch.numpy())
    with torch.no_grad():
        torch_out = ProbabilityModel(student)(batch).numpy()
    assert onnx_out.shape == (3, 1, 352, 352)
    assert np.abs(onnx_out - torch_out).max() < 1e-4
    with pytest.raises(ValueError, match=r"takes \(B, 3, 352, 352\)"):
        OnnxPredictor(path)(np.zeros((1, 3, 64, 64), np.float32))


def test_evaluate_official_weights(tmp_path, monkeypatch):
    """``kdas evaluate --weights`` scores a Polyp-PVT-format file (here a random B0 student)."""
    import torch

    from kdas_utils.kdas.remap import to_polyp_pvt_keys
    from kdas_utils.models import build_student

    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    torch.manual_seed(0)
    torch.save(to_polyp_pvt_keys(build_student().state_dict()), tmp_path / "kdas_student.pth")
    assert (
        main(
            [
                "evaluate",
                "--profile",
                "quick",
                "--device",
                "cpu",
                "--weights",
                str(tmp_path / "kdas_student.pth"),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    table = (tmp_path / "eval" / "evaluation.md").read_text()
    assert "| kdas_student | Synthetic |" in table and "| kdas_student | Synthetic-Shift |" in table


def test_study_jobs_name_a_job_that_failed_and_put_the_threads_back(tmp_path):
    """``kdas study --jobs 2``: the further process (this command again, with ``--shared-job``) writes
    to its log; one that fails is named with its log, and this process gets its threads back."""
    threads = torch.get_num_threads()
    args = argparse.Namespace(jobs=2, argv=["study", "--no-such-option"])
    with pytest.raises(KDASError, match=r"job 2 ended with exit status 2 \(see .*job-2\.log\)"):
        with side_by_side(args, tmp_path):
            assert torch.get_num_threads() == max(1, (os.cpu_count() or 1) // 2)
    assert "unrecognized arguments: --no-such-option" in (tmp_path / "job-2.log").read_text()
    assert torch.get_num_threads() == threads


def test_the_int8_teacher_is_for_one_run_not_the_ablation(user_env, capsys):
    assert main(["distill", "--profile", "quick", "--ablation", "no-kd=1", "--teacher-int8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kdas distill: error: --teacher-int8 trains one run; leave it out of --ablation"
    )
    assert not (user_env / "runs").exists()
