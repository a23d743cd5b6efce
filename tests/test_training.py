import numpy as np
import pytest
import torch

from kdas_utils.config import get_profile
from kdas_utils.data import DatasetError, read_mask
from kdas_utils.engine import load_checkpoint
from kdas_utils.evaluate import mean_dice
from kdas_utils.kdas import count_parameters
from kdas_utils.kdas.polyp_pvt import PolypOutput
from kdas_utils.kdas.remap import to_polyp_pvt_keys
from kdas_utils.models import build_student, build_teacher, describe
from kdas_utils.runs import checkpoint_dir, profile_splits, train_teacher


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(tmp_path / "synthetic"))
    return get_profile("quick").replace(
        image_size=64, epochs=1, teacher_epochs=1, max_steps_per_epoch=2, synthetic_train=24, synthetic_test=6
    )


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_teacher_is_trained_once_then_loaded_then_resumed_for_more_epochs(tiny_profile):
    first = train_teacher(tiny_profile, progress=False)
    assert first.source == "trained" and first.path == checkpoint_dir("teacher", tiny_profile) / "best.pt"
    assert len(first.history) == 1 and len(first.steps) == 2 and not first.model.training

    again = train_teacher(tiny_profile, progress=False)
    assert again.source == "checkpoint"
    assert _same_weights(first.model, again.model) and again.history == first.history

    longer = train_teacher(tiny_profile, progress=False, epochs=2)  # an unfinished run: resumed, not restarted
    assert longer.source == "trained" and [h["epoch"] for h in longer.history] == [1, 2]
    assert (
        longer.steps[:2] == first.steps
        and load_checkpoint(checkpoint_dir("teacher", tiny_profile) / "last.pt")["step"] == 4
    )


def test_official_weights_are_used_instead_of_training(tiny_profile, tmp_path):
    torch.manual_seed(5)
    source = build_teacher()
    torch.save(to_polyp_pvt_keys(source.state_dict()), tmp_path / "PolypPVT.pth")
    run = train_teacher(tiny_profile, weights=tmp_path / "PolypPVT.pth")
    assert run.source == "weights" and run.history == [] and _same_weights(run.model, source)
    assert not checkpoint_dir("teacher", tiny_profile).exists()


def test_real_profile_without_real_data_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_DATA_ROOT", str(tmp_path / "nothing"))
    with pytest.raises(DatasetError, match="nothing: no TrainDataset/.*'standard' profile.*KDAS_PROFILE=quick"):
        profile_splits(get_profile("standard"))


def test_profile_splits_are_disjoint_and_keep_the_test_sets_apart(tiny_profile):
    splits = profile_splits(tiny_profile)
    assert (len(splits.train), len(splits.val)) == (22, 2) and not set(splits.train) & set(splits.val)
    assert {name: len(p) for name, p in splits.test.items()} == {"Synthetic": 6, "Synthetic-Shift": 6}


class Background(torch.nn.Module):
    """Predicts 'no polyp' everywhere."""

    def forward(self, x):
        logits = torch.full((len(x), 1, *x.shape[-2:]), -10.0)
        return PolypOutput(p1=logits, p2=logits, stages=(), cim=None, cfm=None, sam=None)


def test_mean_dice_is_compared_at_each_masks_size(tiny_profile):
    pairs = profile_splits(tiny_profile).test["Synthetic"]
    assert any(read_mask(m).sum() > 0 for _, m in pairs)
    # predicting nothing scores 0 everywhere: on a polyp, and on an empty mask too (0 / 0 counts as 0)
    assert mean_dice(Background(), pairs, 64) == 0.0


def test_architecture_table_adds_up_and_has_the_shapes():
    student = build_student()
    table = describe(student, image_size=64)
    assert table["parameters"].sum() == count_parameters(student)
    assert table.loc["stage1", "output (C x H x W)"] == "32 x 16 x 16" and table.loc["stage4", "stride"] == 32
    assert table.loc["head_p1", "output (C x H x W)"] == "1 x 64 x 64"


def test_ablation_runs_every_arm_scores_it_and_continues(tiny_profile):
    import pandas as pd

    from kdas_utils.evaluate import summarize_ablation
    from kdas_utils.runs import StudentRecipe, finished_plan, run_ablation

    teacher = build_teacher()
    plan = {"no-kd": 2, "kdas": 1, "released": 1}
    table = run_ablation(tiny_profile, plan, teacher=teacher, progress=False)
    assert list(zip(table.arm, table.seed)) == [("no-kd", 0), ("kdas", 0), ("released", 0), ("no-kd", 1)]
    assert {"validation", "Synthetic", "Synthetic-Shift"} <= set(table.columns)
    assert table[["validation", "Synthetic"]].apply(lambda c: c.between(0, 1)).all().all()
    saved = pd.read_csv(checkpoint_dir("teacher", tiny_profile).parent.parent / "ablation-quick.csv")
    assert len(saved) == 4
    assert (checkpoint_dir("teacher", tiny_profile).parent.parent / "ablation-quick.png").stat().st_size > 0
    released = load_checkpoint(StudentRecipe("released").folder(tiny_profile, 0) / "last.pt")["history"][0]
    assert "train_at" in released and np.isfinite(released["train_loss"])
    summary = summarize_ablation(table)
    assert summary.loc["no-kd", "seeds"] == 2 and "±" in summary.loc["no-kd", "validation"]
    assert "±" not in summary.loc["kdas", "validation"]
    assert finished_plan(tiny_profile) == plan  # what `kdas distill --ablation finished` scores
    again = run_ablation(tiny_profile, plan, teacher=teacher, progress=False)  # loaded, not retrained
    pd.testing.assert_frame_equal(again.drop(columns="train_seconds"), table.drop(columns="train_seconds"))


def test_unknown_arm_is_named(tiny_profile):
    from kdas_utils.runs import run_ablation, train_student

    with pytest.raises(ValueError, match="arm='kd': choose one of"):
        train_student(tiny_profile, "kd")
    with pytest.raises(TypeError, match=r"train_student: epochs= belong\(s\) to the run's recipe: give StudentRecipe"):
        train_student(tiny_profile, "no-kd", epochs=3)  # would train a longer run in the profile's folder
    with pytest.raises(ValueError, match=r"unknown arm\(s\) \['kd'\]"):
        run_ablation(tiny_profile, {"kd": 1})


def test_other_weights_train_apart_and_a_finished_run_is_never_taken_for_other_settings(tiny_profile):
    from kdas_utils.engine import CheckpointError
    from kdas_utils.kdas import DistillationObjective, KDASLoss
    from kdas_utils.runs import StudentRecipe, finished_plan, train_or_load, train_student

    # the folder names of the runs made before the recipe existed (the study's checkpoints)
    assert StudentRecipe("kdas").folder(tiny_profile, 0).name == "student-kdas-s0-quick"
    assert StudentRecipe("kdas", alpha=0.1).folder(tiny_profile, 1).name == "student-kdas-a0.1-s1-quick"
    assert StudentRecipe("at", alpha=0.1, tau=1).folder(tiny_profile, 0).name == "student-at-a0.1-t1-s0-quick"
    no_teacher = StudentRecipe("no-kd", alpha=0.1, teacher_epoch=3, teacher_int8=True)
    assert no_teacher.folder(tiny_profile, 0) == StudentRecipe("no-kd").folder(tiny_profile, 0)
    assert StudentRecipe("no-kd", alpha=0.1).table(tiny_profile).name == "ablation-quick-a0.1.csv"

    teacher = build_teacher()
    default = train_student(tiny_profile, "kdas", teacher=teacher, progress=False)
    other = train_student(tiny_profile, StudentRecipe(alpha=0.1), teacher=teacher, progress=False)
    assert other.source == "trained" and other.path.parent == StudentRecipe(alpha=0.1).folder(tiny_profile, 0)
    assert load_checkpoint(other.path)["objective_settings"]["alpha"] == 0.1
    assert load_checkpoint(default.path.parent / "last.pt")["objective_settings"]["alpha"] == 0.3
    assert finished_plan(tiny_profile) == {"kdas": 1} and finished_plan(tiny_profile, StudentRecipe(alpha=0.1)) == {
        "kdas": 1
    }
    assert finished_plan(tiny_profile, StudentRecipe(alpha=0.2)) == {}

    # The same folder asked for with other terms: refused, with what differs, instead of loaded.
    from kdas_utils.models import build_student

    objective = DistillationObjective(teacher, KDASLoss(sgm=None))
    with pytest.raises(
        CheckpointError,
        match=r"student-kdas-s0-quick: holds a finished run made with other settings"
        r" \(objective sgm: covariance there, None here.*--retrain",
    ):
        train_or_load(
            "student",
            StudentRecipe("kdas").folder(tiny_profile, 0),
            build_student,
            tiny_profile,
            objective=objective,
            progress=False,
        )


def test_a_longer_schedule_trains_apart_and_starts_from_the_profiles_run(tiny_profile):
    from kdas_utils.runs import StudentRecipe, train_student

    short = train_student(tiny_profile, "no-kd", progress=False)
    longer_recipe = StudentRecipe("no-kd", epochs=3)
    assert longer_recipe.folder(tiny_profile, 0).name == "student-no-kd-e3-s0-quick"
    assert StudentRecipe("no-kd", epochs=1).folder(tiny_profile, 0) == short.path.parent  # not longer: the same run
    longer = train_student(tiny_profile, longer_recipe, progress=False)
    assert longer.path.parent == longer_recipe.folder(tiny_profile, 0)
    assert [h["epoch"] for h in longer.history] == [1, 2, 3] and longer.history[0] == short.history[0]
    assert load_checkpoint(short.path.parent / "last.pt")["epoch"] == 1  # the profile's run is left as it was


def test_students_distil_from_a_teacher_snapshot(tiny_profile):
    from kdas_utils.engine import CheckpointError
    from kdas_utils.runs import StudentRecipe, teacher_snapshot, train_student

    profile = tiny_profile.replace(teacher_epochs=2, keep_epochs=(1,))
    train_teacher(profile, progress=False)
    assert teacher_snapshot(profile, 1).exists() and load_checkpoint(teacher_snapshot(profile, 1))["epoch"] == 1
    with pytest.raises(CheckpointError, match="no teacher snapshot of epoch 2.*keeps epochs \\[1\\]"):
        teacher_snapshot(profile, 2)
    recipe = StudentRecipe("pixel", alpha=0.1, teacher_epoch=1)
    run = train_student(profile, recipe, progress=False)
    assert run.path.parent == recipe.folder(profile, 0)
    assert run.path.parent.name == "student-pixel-a0.1-te1-s0-quick"
    settings = load_checkpoint(run.path)["objective_settings"]
    assert (settings["kd"], settings["alpha"], settings["at"], settings["sgm"]) == ("pixel", 0.1, None, None)
    assert "train_kd" in run.history[0] and run.history[0]["train_kd"] > 0


def test_a_distilled_runs_learned_loss_starts_from_its_seed_whatever_ran_before():
    """The covariance SGM's projection is part of the run: built from the run's seed, not from the random
    state the process happens to be in (a side-by-side process that had trained other runs first built
    it elsewhere, and its KDAS runs moved by up to 0.04 Dice between clean tutorial runs)."""
    from kdas_utils.runs import StudentRecipe
    from kdas_utils.runs.student import distillation_objective

    teacher, recipe = build_teacher().eval(), StudentRecipe("kdas", alpha=0.1)
    torch.manual_seed(123)
    first = distillation_objective(recipe, teacher, seed=0).loss.sgm.projections["stage4"].weight
    torch.rand(1000)  # a process that did other work in between
    again = distillation_objective(recipe, teacher, seed=0).loss.sgm.projections["stage4"].weight
    other = distillation_objective(recipe, teacher, seed=1).loss.sgm.projections["stage4"].weight
    assert torch.equal(first, again) and not torch.equal(first, other)
    after = torch.rand(1)
    torch.manual_seed(123)
    torch.rand(1000)
    assert torch.equal(after, torch.rand(1))  # the caller's random state is left as it was
