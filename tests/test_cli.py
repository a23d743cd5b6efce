import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdas_utils.cli import main
from kdas_utils.data import eval_transforms, read_image
from kdas_utils.models import build_student

KDAS = Path(sys.executable).with_name("kdas")
SUBCOMMANDS = ("prepare-data", "train-teacher", "distill", "evaluate", "export")


def run_kdas(*args):
    return subprocess.run([str(KDAS), *args], capture_output=True, text=True, timeout=120)


def test_help_of_the_command_and_every_subcommand():
    assert KDAS.exists(), "the package installs a `kdas` command (pip install -e .)"
    top = run_kdas("--help")
    assert top.returncode == 0 and all(name in top.stdout for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        result = run_kdas(name, "--help")
        assert result.returncode == 0 and result.stdout.startswith(f"usage: kdas {name}"), name
        assert "--profile" in result.stdout


def test_bad_arguments_say_what_to_type():
    result = run_kdas("distill", "--arm", "kd")
    assert result.returncode == 2 and "argument --arm: invalid choice: 'kd' (choose from" in result.stderr
    assert all(arm in result.stderr for arm in ("no-kd", "at", "sgm", "kdas", "released"))
    result = run_kdas("train-teacher", "--profile", "fast")
    assert result.returncode == 2 and "invalid choice: 'fast'" in result.stderr and "standard" in result.stderr


def test_evaluate_without_checkpoints_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="no checkpoint of the 'quick' profile.*kdas train-teacher --profile quick"):
        main(["evaluate", "--profile", "quick"])
    with pytest.raises(SystemExit, match="plan item 'kd=1': write ARM=SEEDS"):
        main(["distill", "--profile", "quick", "--ablation", "kd=1"])
    with pytest.raises(SystemExit, match="no finished student run of the 'quick' profile yet"):
        main(["distill", "--profile", "quick", "--ablation", "finished"])


def test_quick_pipeline_from_the_terminal(tmp_path, monkeypatch, capsys):
    """prepare-data, train-teacher, distill, evaluate and export, one epoch each, in the quick profile."""
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    assert main(["prepare-data", "--profile", "quick"]) == 0
    assert "240 training pairs" in capsys.readouterr().out
    assert main(["train-teacher", "--profile", "quick", "--epochs", "1", "--device", "cpu"]) == 0
    assert main(["distill", "--profile", "quick", "--epochs", "1", "--device", "cpu"]) == 0
    assert "student kdas (seed 0): trained" in capsys.readouterr().out
    assert main(["evaluate", "--profile", "quick", "--device", "cpu"]) == 0
    table = (tmp_path / "runs" / "evaluation-quick" / "evaluation.md").read_text()
    assert "| teacher | Synthetic |" in table and "| KDAS student | Synthetic-Shift |" in table
    out = tmp_path / "student.onnx"
    assert main(["export", "--profile", "quick", "--image-size", "128", "--out", str(out)]) == 0
    assert out.stat().st_size > 1_000_000


def test_onnx_student_matches_pytorch_on_a_real_frame(real_pair, tmp_path):
    from kdas_utils.export import OnnxPredictor, Predictor, export_onnx

    torch.manual_seed(0)
    student = build_student().eval()
    path = export_onnx(student, tmp_path / "student.onnx", image_size=352)
    image = eval_transforms(352)(image=read_image(real_pair[0]))["image"][None].float()
    batch = torch.cat([image, image.flip(-1), image.flip(-2)])  # a batch of 3: the batch size is dynamic
    onnx_out = OnnxPredictor(path)(batch.numpy())
    with torch.no_grad():
        torch_out = Predictor(student)(batch).numpy()
    assert onnx_out.shape == (3, 1, 352, 352)
    assert np.abs(onnx_out - torch_out).max() < 1e-4
    with pytest.raises(ValueError, match=r"takes \(B, 3, 352, 352\)"):
        OnnxPredictor(path)(np.zeros((1, 3, 64, 64), np.float32))


def test_evaluate_official_weights(tmp_path, monkeypatch):
    """``kdas evaluate --weights`` scores a Polyp-PVT-format file (here a random B0 student)."""
    import torch

    from kdas_utils.models import build_student
    from kdas_utils.models.weights import to_polyp_pvt_keys

    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    torch.manual_seed(0)
    torch.save(to_polyp_pvt_keys(build_student().state_dict()), tmp_path / "kdas_student.pth")
    assert main(["evaluate", "--profile", "quick", "--device", "cpu", "--weights", str(tmp_path / "kdas_student.pth"),
                 "--out", str(tmp_path / "eval")]) == 0
    table = (tmp_path / "eval" / "evaluation.md").read_text()
    assert "| kdas_student | Synthetic |" in table and "| kdas_student | Synthetic-Shift |" in table
