from pathlib import Path

import pytest

from kdas_utils import config


def test_three_profiles_with_paper_recipe():
    assert set(config.PROFILES) == {"quick", "standard", "paper"}
    paper = config.PROFILES["paper"]
    assert (paper.image_size, paper.batch_size, paper.epochs, paper.multi_scale) == (352, 16, 100, True)
    assert config.PROFILES["quick"].data == "synthetic"
    for profile in config.PROFILES.values():
        assert profile.image_size % 32 == 0, profile.name


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("KDAS_PROFILE", "Standard")
    assert config.get_profile().name == "standard"
    assert config.get_profile("paper").name == "paper"  # an argument wins


def test_default_profile_follows_gpu_and_data(monkeypatch, tmp_path):
    monkeypatch.delenv("KDAS_PROFILE", raising=False)
    monkeypatch.setenv("KDAS_DATA_ROOT", str(tmp_path))
    (tmp_path / "TrainDataset").mkdir()
    monkeypatch.setattr(config, "cuda_available", lambda: False)
    assert config.get_profile().name == "quick"
    monkeypatch.setattr(config, "cuda_available", lambda: True)
    assert config.get_profile().name == "paper"
    (tmp_path / "TrainDataset").rmdir()  # a GPU but no real data (a fresh Colab session): the lesson
    assert config.get_profile().name == "quick"


def test_unknown_profile_lists_valid_names(monkeypatch):
    monkeypatch.setenv("KDAS_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast'.*KDAS_PROFILE.*quick, standard, paper"):
        config.get_profile()


def test_replace_keeps_original():
    quick = config.get_profile("quick")
    assert quick.replace(epochs=7).epochs == 7 and quick.epochs == config.PROFILES["quick"].epochs


def test_paths_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KDAS_HOME", str(tmp_path))
    monkeypatch.delenv("KDAS_DATA_ROOT", raising=False)
    monkeypatch.delenv("KDAS_RUNS_DIR", raising=False)
    assert config.data_root() == tmp_path / "data" / "polyp"
    assert config.runs_dir() == tmp_path / "runs"
    monkeypatch.setenv("KDAS_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert config.data_root() == tmp_path / "elsewhere"


def test_project_root_found_from_notebooks_folder(monkeypatch):
    monkeypatch.delenv("KDAS_HOME", raising=False)
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo / "notebooks")
    assert config.project_root() == repo


def test_teachers_train_longer_and_every_profile_has_the_released_stochastic_depth():
    for profile in config.PROFILES.values():
        assert profile.drop_path_rate == 0.1, profile.name
        assert profile.teacher_epochs >= profile.epochs, profile.name
    standard = config.PROFILES["standard"]
    assert standard.teacher_epochs > standard.epochs and all(e <= standard.teacher_epochs for e in standard.keep_epochs)
    assert (
        config.Profile(
            "x", "real", 64, 2, epochs=3, max_steps_per_epoch=None, multi_scale=False, num_workers=0
        ).teacher_epochs
        == 3
    )  # defaults to the students' epochs
