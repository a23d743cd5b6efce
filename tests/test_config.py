from pathlib import Path

import pytest

from kdas_utils import config


def test_four_profiles_with_paper_recipe():
    assert set(config.PROFILES) == set(config.PROFILE_NAMES) == {"quick", "standard", "colab", "paper"}
    paper = config.PROFILES["paper"]
    assert (paper.image_size, paper.batch_size, paper.epochs, paper.multi_scale) == (352, 16, 100, True)
    assert paper.pretrained and paper.official_teacher == "official if prepared"
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
    assert config.get_profile().name == "colab"  # a session-sized KDAS run; paper is asked for by name
    (tmp_path / "TrainDataset").rmdir()  # a GPU but no real data (a fresh Colab session): the lesson
    assert config.get_profile().name == "quick"


def test_unknown_profile_lists_valid_names(monkeypatch):
    monkeypatch.setenv("KDAS_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast'.*KDAS_PROFILE.*quick, standard, colab, paper"):
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


def test_colab_profile_fits_a_session_by_its_stated_estimate():
    from kdas_utils.efficiency import epoch_seconds, session_epochs

    colab = config.PROFILES["colab"]
    assert (colab.image_size, colab.batch_size, colab.multi_scale, colab.data) == (352, 16, False, "real")
    assert colab.pretrained and colab.official_teacher == "official"
    assert colab.epochs == session_epochs(30 * 60, 2.0) == 75  # README, "Reproduce the paper on a GPU"
    assert colab.epochs * epoch_seconds(2.0) <= 30 * 60
    assert not config.PROFILES["quick"].pretrained and not config.PROFILES["standard"].pretrained
    with pytest.raises(ValueError, match="official_teacher='always'"):
        config.PROFILES["colab"].replace(official_teacher="always")


def test_weights_and_download_folders_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KDAS_HOME", str(tmp_path))
    monkeypatch.delenv("KDAS_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("KDAS_DOWNLOAD_ROOT", raising=False)
    assert config.weights_dir() == tmp_path / "data" / "weights" and config.download_root() == tmp_path / "data"
    monkeypatch.setenv("KDAS_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("KDAS_DOWNLOAD_ROOT", str(tmp_path / "d"))
    assert config.weights_dir() == tmp_path / "w" and config.download_root() == tmp_path / "d"


def test_a_profile_learning_rate_reaches_training_and_is_part_of_a_run_identity():
    from kdas_utils.engine import TrainConfig, settings_changed

    quick = config.PROFILES["quick"]
    assert quick.lr == 3e-4 and TrainConfig.from_profile(quick).lr == 3e-4
    assert TrainConfig.from_profile(config.PROFILES["standard"]).lr == 1e-4  # the paper's, where a profile sets none
    assert TrainConfig.from_profile(quick, lr=1e-3).lr == 1e-3  # an explicit change wins
    saved = {"config": {**TrainConfig.from_profile(quick).__dict__, "lr": 1e-4}}
    assert settings_changed(saved, TrainConfig.from_profile(quick)) == ["lr: 0.0001 there, 0.0003 here"]
