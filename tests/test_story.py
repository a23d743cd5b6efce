"""The learner's story (notebook 05, ``runs/quick_story.json``) on a tiny profile: every run of the plan
trained once, side by side in two processes, scored on the seen test set; a second call trains nothing."""

import json

import pytest

from kdas_utils import runs, story
from kdas_utils.config import get_profile
from kdas_utils.runs import StudentRecipe
from kdas_utils.side_by_side import train_side_by_side


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(tmp_path / "synthetic"))
    return get_profile("quick").replace(
        image_size=64,
        batch_size=4,
        epochs=2,
        teacher_epochs=1,
        max_steps_per_epoch=1,
        synthetic_train=16,
        synthetic_test=4,
    )


def test_the_plan_pairs_each_seed_of_the_student_alone_with_the_kdas_student():
    plan = story.story_plan(0.1, seeds=(0, 1), fraction=0.25)
    assert list(plan) == ["alone", "kdas", "alone_l25", "kdas_l25"]
    assert [seed for _, seed in plan["kdas_l25"]] == [0, 1]
    recipe = plan["kdas_l25"][0][0]
    assert recipe == StudentRecipe("kdas", alpha=0.1, label_fraction=0.25) and plan["alone"][0][0].arm == "no-kd"


@pytest.mark.slow
def test_the_story_trains_each_run_once_side_by_side_and_writes_its_numbers(tiny, tmp_path, capsys):
    teacher = runs.train_teacher(tiny, device="cpu", progress=False).model
    told = story.quick_story(tiny, 0.1, teacher, seeds=(0, 1), device="cpu", jobs=2)
    written = json.loads((tmp_path / "runs" / story.STORY_FILE).read_text())
    assert written == told and told["seeds"] == [0, 1] and told["alpha"] == 0.1 and told["test_set"] == "Synthetic"
    for name in ("alone", "kdas", "alone_l25", "kdas_l25"):
        assert len(told[f"{name}_test"]) == 2 and all(0 <= v <= 1 for v in told[f"{name}_test"])
    assert set(told["best_epoch"]) == {
        f"student-{arm}-s{seed}" for arm in ("no-kd", "kdas-a0.1", "no-kd-l0.25", "kdas-a0.1-l0.25") for seed in (0, 1)
    }
    assert all(1 <= epoch <= 2 for epoch in told["best_epoch"].values()) and 0 <= told["teacher_test"] <= 1
    capsys.readouterr()
    loaded = train_side_by_side(tiny, [(StudentRecipe("kdas", alpha=0.1), 1)], jobs=2, device="cpu")
    assert loaded[0].source == "checkpoint" and "backbone from" not in capsys.readouterr().out  # trained once
    assert story.quick_story(tiny, 0.1, teacher, seeds=(0, 1), device="cpu", jobs=2) == told
    assert story.gains(told)["25% of the masks"][1] == pytest.approx(
        told["kdas_l25_test"][1] - told["alone_l25_test"][1]
    )
