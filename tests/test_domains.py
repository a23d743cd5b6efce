"""Test sets from more than one root, labelled seen or unseen, and scored with intervals."""

import shutil

import numpy as np
import pytest
import torch
from helpers.cli import one_line_error, run_main

from kdas_utils.config import get_profile
from kdas_utils.data import DatasetError, domain, find_test_roots, make_synthetic
from kdas_utils.evaluate import average_seeds, domain_frames, domain_table, paper_style
from kdas_utils.models import build_student
from kdas_utils.runs import profile_splits


def test_the_paper_names_are_labelled_and_others_by_where_they_lie():
    assert [domain(n) for n in ("Kvasir", "CVC-ClinicDB", "Synthetic")] == ["seen"] * 3
    assert [domain(n) for n in ("CVC-300", "CVC-ColonDB", "ETIS-LaribPolypDB", "Synthetic-Shift")] == ["unseen"] * 4
    assert domain("Hospital-X") == "seen" and domain("Hospital-X", extra_root=True) == "unseen"
    assert domain("Kvasir", extra_root=True) == "seen"  # a name of the training sources stays seen


@pytest.fixture
def two_roots(tmp_path, monkeypatch):
    """A synthetic data root (as the standard profile's real data) and a second test root holding a
    set the first does not have, named as a hospital of its own."""
    root = make_synthetic(tmp_path / "data", seed=0, n_train=12, n_test=4)
    other = tmp_path / "other" / "TestDataset"
    shutil.copytree(root / "TestDataset" / "Synthetic-Shift", other / "Hospital-X")
    monkeypatch.setenv("KDAS_DATA_ROOT", str(root))
    monkeypatch.delenv("KDAS_TEST_ROOTS", raising=False)
    return root, other.parent


def test_a_second_root_adds_its_sets_labelled_unseen(two_roots, monkeypatch):
    _, other = two_roots
    profile = get_profile("standard").replace(image_size=64)
    assert list(profile_splits(profile).test) == ["Synthetic", "Synthetic-Shift"]
    monkeypatch.setenv("KDAS_TEST_ROOTS", str(other))
    splits = profile_splits(profile)
    assert splits.domains == {"Synthetic": "seen", "Synthetic-Shift": "unseen", "Hospital-X": "unseen"}
    assert splits.of_domain("unseen") == ["Synthetic-Shift", "Hospital-X"] and len(splits.test["Hospital-X"]) == 4
    # a TestDataset folder itself works as a root too; the quick profile takes roots only when asked
    assert "Hospital-X" in profile_splits(profile, extra_roots=[other / "TestDataset"]).test
    assert "Hospital-X" not in profile_splits(get_profile("quick")).test


def test_scoring_a_model_on_both_roots(two_roots):
    _, other = two_roots
    profile = get_profile("standard").replace(image_size=64)
    splits = profile_splits(profile, extra_roots=[other])
    torch.manual_seed(0)
    models = {"student alone": build_student().eval(), "other": build_student().eval()}
    frames = domain_frames(models, splits, 64, "cpu")
    assert {k: len(v) for k, v in frames["other"].items()} == {"Synthetic": 4, "Synthetic-Shift": 4, "Hospital-X": 4}
    table = domain_table(frames, splits.domains, baseline="student alone")
    assert table.loc[("other", "Hospital-X"), "domain"] == "unseen"
    assert table.loc[("other", "unseen"), "frames"] == 8 and table.loc[("other", "seen"), "frames"] == 4
    row = table.loc[("other", "unseen")]
    assert row["low"] <= row["mean"] <= row["high"]
    expected = np.concatenate([frames["other"]["Synthetic-Shift"], frames["other"]["Hospital-X"]]).mean()
    assert row["mean"] == pytest.approx(expected)


def test_the_domain_table_by_hand():
    frames = {
        "teacher": {"Kvasir": np.array([0.9, 0.9]), "ETIS": np.array([0.6, 0.6])},
        "student alone": {"Kvasir": np.array([0.8, 0.8]), "ETIS": np.array([0.3, 0.5])},
    }
    table = domain_table(frames, {"Kvasir": "seen", "ETIS": "unseen"}, baseline="student alone")
    assert table.loc[("teacher", "unseen"), "drop"] == pytest.approx(0.3)  # 0.9 - 0.6
    assert table.loc[("student alone", "unseen"), "drop"] == pytest.approx(0.4)  # 0.8 - 0.4
    gain = table.loc[("teacher", "ETIS")]  # per frame 0.3 and 0.1: the mean 0.2, the interval [0.1, 0.3]
    assert (gain["gain"], gain["gain_low"], gain["gain_high"]) == pytest.approx((0.2, 0.1, 0.3))
    assert table.loc[("teacher", "seen"), "gain_low"] == pytest.approx(0.1)  # the same 0.1 on both frames
    wide = paper_style(table)
    assert list(wide.columns) == ["Kvasir (seen)", "ETIS (unseen)", "seen", "unseen", "drop"]
    assert wide.loc["teacher", "ETIS (unseen)"] == "0.600 [0.600, 0.600]" and wide.loc["teacher", "drop"] == "0.300"


def test_seeds_are_averaged_frame_by_frame():
    frames = {"kdas": [{"A": np.array([0.2, 0.4])}, {"A": np.array([0.4, 0.8])}]}
    assert np.allclose(average_seeds(frames)["kdas"]["A"], [0.3, 0.6])


def test_bad_roots_are_named(tmp_path, two_roots):
    root, other = two_roots
    with pytest.raises(DatasetError, match=r"nowhere: test root not found"):
        find_test_roots([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: not a test root"):
        find_test_roots([tmp_path / "empty"])
    with pytest.raises(DatasetError, match=r"test set 'Hospital-X' is both in .*other.* and in .*other"):
        find_test_roots([other, other / "TestDataset"])


def test_a_missing_or_malformed_root_is_one_line(tmp_path, capsys):
    """What ``kdas evaluate --test-root`` prints (its main, in this process; test_cli.py runs the
    installed command itself)."""
    (tmp_path / "empty").mkdir()
    for root, says in ((tmp_path / "missing", "missing: test root not found"), (tmp_path / "empty", "not a test root")):
        result = run_main(capsys, "evaluate", "--profile", "quick", "--test-root", str(root))
        one_line_error(result, "evaluate", says, str(root))


def test_evaluate_help_mentions_test_root(capsys):
    result = run_main(capsys, "evaluate", "--help")
    assert result.returncode == 0 and "--test-root" in result.stdout


def test_the_real_unseen_frames_are_labelled(real_root, unseen_root, monkeypatch):
    monkeypatch.setenv("KDAS_DATA_ROOT", str(real_root))
    splits = profile_splits(get_profile("standard"), extra_roots=[unseen_root])
    assert {name: (len(pairs), splits.domains[name]) for name, pairs in splits.test.items()} == {
        "CVC-ClinicDB": (62, "seen"),
        "Kvasir": (99, "seen"),
        "CVC-ColonDB": (19, "unseen"),
        "ETIS-LaribPolypDB": (20, "unseen"),
    }


def test_the_unseen_step_alone_trains_nothing_and_says_what_is_missing(
    real_root, unseen_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("KDAS_DATA_ROOT", str(real_root))
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("KDAS_TEST_ROOTS", raising=False)
    result = run_main(capsys, "study", "--profile", "standard", "--step", "unseen")
    assert result.returncode == 2 and "hold no unseen set" in result.stderr
    result = run_main(capsys, "study", "--profile", "standard", "--step", "unseen", "--test-root", str(unseen_root))
    assert result.returncode == 2 and "no finished run of the standard profile's final comparison" in result.stderr
    assert not (tmp_path / "runs" / "checkpoints").exists()  # nothing was trained


def test_counts_are_told_against_pranets_split():
    from kdas_utils.data import against_pranet

    assert against_pranet(1450, {"Kvasir": 100, "CVC-ClinicDB": 62}) == ["every count agrees with PraNet's split"]
    assert against_pranet(240, {"Synthetic": 60, "Synthetic-Shift": 60}) == [
        "no set of PraNet's split here (synthetic frames): no published count to compare with"
    ]
    lines = against_pranet(1446, {"Kvasir": 99, "CVC-ClinicDB": 62, "ETIS-LaribPolypDB": 20})
    assert lines == [
        "TrainDataset: 1446 frames here, 1450 in PraNet's split (4 fewer in this copy)",
        "Kvasir: 99 frames here, 100 in PraNet's split (1 fewer in this copy)",
        "ETIS-LaribPolypDB: 20 frames here, 196 in PraNet's split (176 fewer in this copy)",
    ]
