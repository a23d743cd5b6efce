"""The Colab path end to end, offline: a stand-in ``google.colab`` (Drive mounted in a temporary
folder), the setup cell's call (``offer_real_data``), its buttons pressed, PraNet's data and the
official teacher fetched by ``gdown`` (a stand-in that reads a mirror on 127.0.0.1), the ``colab``
profile's networks built with pretrained backbones from the test's files, one distillation step on
the CPU at 64 px, then a "disconnect" (a new machine) after which the same clicks restore everything."""

import os
import shutil
import sys
import types

import pytest
import torch
from helpers.mirror import Mirror, fake_gdown, polyp_pvt_checkpoint, pranet_archives, release_backbone

from kdas_utils import colab, config
from kdas_utils.models import build_student, build_teacher
from kdas_utils.notebook import offer_real_data
from kdas_utils.runs import train_student

VARIABLES = ("KDAS_DATA_ROOT", "KDAS_RUNS_DIR", "KDAS_WEIGHTS_DIR", "KDAS_DOWNLOAD_ROOT", "KDAS_PROFILE")


@pytest.fixture
def colab_machine(tmp_path, monkeypatch):
    """A fresh 'Colab machine': the project in tmp/kdas, Drive mounted at tmp/drive, gdown reading the mirror."""
    server = Mirror()
    project = tmp_path / "kdas"
    project.mkdir()
    monkeypatch.setenv("KDAS_HOME", str(project))
    # keep_on_drive sets KDAS_RUNS_DIR and more: the whole environment is put back afterwards. Not by
    # monkeypatch: it records no delenv of an absent variable, and its undo of a delenv made after
    # keep_on_drive (a new session) would set the Drive folders again.
    saved = dict(os.environ)
    for variable in VARIABLES:
        os.environ.pop(variable, None)
    mounted = []
    google_colab = types.ModuleType("google.colab")
    google_colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: None)
    google_colab.drive = types.SimpleNamespace(
        mount=lambda path: mounted.append(path) or (tmp_path / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)
    )
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setitem(sys.modules, "gdown", fake_gdown(server))
    monkeypatch.setattr(colab, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setattr(config, "cuda_available", lambda: True)  # a GPU runtime, as far as the profile goes
    yield types.SimpleNamespace(
        project=project, drive=tmp_path / "drive" / "MyDrive" / "kdas-notebooks", mirror=server, mounted=mounted
    )
    server.close()
    os.environ.clear()  # else the notebooks tested later would train into this test's Drive folder
    os.environ.update(saved)


def new_session(machine):
    """A disconnect: a new machine (the project's data/ and runs/ are gone), the kernel's variables reset."""
    for folder in ("data", "runs"):
        shutil.rmtree(machine.project / folder, ignore_errors=True)
    for variable in VARIABLES:
        os.environ.pop(variable, None)  # colab_machine puts the environment back


@pytest.mark.slow
def test_colab_session_end_to_end(colab_machine, monkeypatch, capsys):
    machine = colab_machine
    torch.manual_seed(0)
    official = build_teacher().eval()
    machine.mirror.files.update(pranet_archives(n_train=20), **{"PolypPVT.pth": polyp_pvt_checkpoint(official)})
    student_init = build_student()
    local_weights = machine.project / "data" / "weights"  # the student's ImageNet backbone, made by the test
    local_weights.mkdir(parents=True)
    (local_weights / "pvt_v2_b0.pth").write_bytes(release_backbone(student_init))

    assert config.get_profile().name == "quick"  # a fresh session: the lesson, until real data is there
    box = offer_real_data()  # what every notebook's setup cell calls on Colab
    assert list(box.buttons) == ["drive", "pranet", "kvasir", "teacher"]
    box.buttons["drive"].click()
    assert machine.mounted and config.runs_dir() == machine.drive / "runs"
    assert config.weights_dir() == machine.drive / "weights" and config.download_root() == machine.drive / "data"
    assert (machine.drive / "weights" / "pvt_v2_b0.pth").is_file()  # what the session had is copied to Drive
    box.buttons["pranet"].click()
    box.buttons["teacher"].click()
    output = capsys.readouterr().out
    assert "error" not in output, output
    assert all(box.buttons[k].disabled for k in ("drive", "pranet", "kvasir", "teacher"))
    assert (machine.project / "data" / "polyp" / "TrainDataset").is_dir()  # frames on the machine's disk
    assert (machine.drive / "data" / "downloads" / "TrainDataset.zip").is_file()  # archives on Drive
    assert (machine.drive / "weights" / "PolypPVT.pth.sha256").is_file()

    profile = config.get_profile()
    assert profile.name == "colab" and profile.pretrained and profile.official_teacher == "official"
    small = profile.replace(image_size=64, batch_size=2, epochs=1, max_steps_per_epoch=1, num_workers=0)
    run = train_student(small, "kdas", device="cpu")
    log = capsys.readouterr().out
    assert f"backbone from ImageNet pvt_v2_b0: {machine.drive / 'weights' / 'pvt_v2_b0.pth'}" in log
    assert "PolypPVT.pth: " in log  # the official teacher's load report
    assert run.source == "trained" and len(run.history) == 1 and len(run.steps) == 1
    assert run.path.is_relative_to(machine.drive / "runs")  # checkpoints on Drive
    trained = run.model.backbone.state_dict()
    assert not all(torch.equal(trained[k], v) for k, v in student_init.backbone.state_dict().items())

    new_session(machine)
    fetched = len(machine.mirror.requests)
    box = offer_real_data()
    box.buttons["drive"].click()  # the same click restores the data (unpacked from Drive) and the runs
    assert (machine.project / "data" / "polyp" / "TrainDataset").is_dir()
    assert len(machine.mirror.requests) == fetched  # nothing downloaded again
    again = train_student(small, "kdas", device="cpu")
    assert again.source == "checkpoint" and again.path == run.path


def test_keep_on_drive_copies_what_the_session_made_and_never_overwrites(colab_machine, monkeypatch):
    machine = colab_machine
    data = machine.project / "data"
    for path, content in {
        data / "downloads" / "TestDataset.zip": b"archive",
        data / "synthetic" / "TrainDataset" / "frame.png": b"synthetic",
        machine.project / "runs" / "checkpoints" / "teacher-colab" / "last.pt": b"checkpoint",
    }.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    home = colab.keep_on_drive()
    assert home == machine.drive and config.runs_dir() == home / "runs"
    assert (home / "data" / "downloads" / "TestDataset.zip").read_bytes() == b"archive"
    assert (home / "runs" / "checkpoints" / "teacher-colab" / "last.pt").read_bytes() == b"checkpoint"
    assert not (home / "data" / "synthetic").exists()  # only the archives go to Drive, not the frames
    (machine.project / "runs" / "checkpoints" / "teacher-colab" / "last.pt").write_bytes(b"another machine's")
    del os.environ["KDAS_RUNS_DIR"]  # a new session, whose local runs/ differs from Drive's
    colab.keep_on_drive()  # Drive has runs now: nothing is copied over them
    assert (home / "runs" / "checkpoints" / "teacher-colab" / "last.pt").read_bytes() == b"checkpoint"
