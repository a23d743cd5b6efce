"""The study of notebook 07 on a tiny profile: alpha chosen on validation, seeds, teacher strength."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from kdas_utils import runs, study
from kdas_utils.config import get_profile
from kdas_utils.evaluate import gap_closed, mean_dice
from kdas_utils.models import load_network
from kdas_utils.runs import StudentRecipe, profile_splits


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDAS_SYNTH_ROOT", str(tmp_path / "synthetic"))
    return get_profile("quick").replace(
        image_size=64,
        epochs=1,
        teacher_epochs=2,
        keep_epochs=(1,),
        max_steps_per_epoch=1,
        synthetic_train=16,
        synthetic_test=4,
    )


def test_choose_alpha_reads_only_the_validation_column():
    sweep = pd.DataFrame(
        {
            "arm": ["kdas", "kdas", "pixel", "pixel"],
            "alpha": [0.1, 0.3, 0.1, 0.3],
            "validation": [0.5, 0.6, 0.7, 0.4],
            "Kvasir": [0.9, 0.1, 0.1, 0.9],
        }
    )
    assert study.choose_alpha(sweep) == {"kdas": 0.3, "pixel": 0.1}


def test_gap_closed_is_the_share_of_the_teacher_student_gap():
    table = pd.DataFrame(
        {"arm": ["no-kd", "no-kd", "kd", "kd"], "seed": [0, 1, 0, 1], "validation": [0.5, 0.7, 0.7, 0.7]}
    )
    gap = gap_closed(table, {"validation": 0.8})  # alone 0.6, teacher 0.8, student 0.7: half the gap
    assert gap.loc["kd", "validation"] == pytest.approx(0.5) and gap.loc["no-kd", "validation"] == 0
    with pytest.raises(ValueError, match="no 'no-kd' rows"):
        gap_closed(table[table.arm == "kd"], {"validation": 0.8})


def test_answer_reads_each_arm_against_the_seed_spread():
    seeds = pd.DataFrame(
        {
            "arm": ["no-kd", "no-kd", "no-kd", "kdas", "kdas", "kdas", "pixel"],
            "seed": [0, 1, 2, 0, 1, 2, 0],
            "validation": [0.60, 0.62, 0.64, 0.70, 0.71, 0.72, 0.63],
        }
    )
    rows = study.against_alone(seeds)
    assert rows.loc["kdas", "difference"] == pytest.approx(0.09) and rows.loc["kdas", "spread"] == pytest.approx(0.02)
    assert rows.loc["pixel", "seeds"] == 1 and rows.loc["pixel", "spread"] == pytest.approx(0.02)  # no-kd's
    lines = study.answer({"ablation-a0.1-te10": seeds, "teacher-curve": pd.DataFrame()})
    assert lines[0].startswith(
        "ablation-a0.1-te10: kdas (3 seeds, validation 0.710) is above the student alone (+0.090"
    )
    assert "pixel (1 seed, validation 0.630) is within the seed spread of" in lines[1]
    below = seeds.assign(validation=[0.70, 0.71, 0.72, 0.60, 0.62, 0.64, 0.63])
    assert " is below " in study.answer({"seeds": below})[0]
    assert study.answer({"ablation-a0.05": seeds[seeds.arm == "pixel"]}) == [
        "ablation-a0.05: no student alone in this table to compare with."
    ]
    assert study.answer({"teacher-curve": pd.DataFrame()}) == [
        "No comparison with the student alone has been measured on these frames yet."
    ]
    with pytest.raises(ValueError, match="no 'no-kd' rows"):
        study.against_alone(seeds[seeds.arm != "no-kd"])


def _alone(validation):
    return pd.DataFrame({"arm": ["no-kd"] * len(validation), "seed": range(len(validation)), "validation": validation})


def test_answer_reads_teacher_strength_against_the_spread_of_the_student_alone():
    strength = pd.DataFrame(
        {
            "teacher_epoch": ["best", "3", "10"],  # as read back from the CSV, not in order of strength
            "teacher_validation": [0.85, 0.49, 0.73],
            "alpha": 0.05,
            "arm": "kdas",
            "validation": [0.625, 0.587, 0.641],
            "gain": [0.018, -0.020, 0.034],
        }
    )
    seeds = _alone([0.60, 0.62, 0.64])  # std 0.02
    (line,) = study.answer({"seeds": seeds, "teacher-strength": strength})
    assert line == (
        "teacher-strength: kdas (alpha 0.05, one seed per teacher), gain over the student alone: "
        "epoch 3 (teacher 0.490) -0.020, epoch 10 (teacher 0.730) +0.034, the final teacher (teacher 0.850) +0.018; "
        "a weaker teacher, epoch 10, taught best: +0.016 over the strongest, no more than the seed spread "
        "(spread 0.020)."
    )
    wider = strength.assign(gain=[0.018, -0.020, 0.060])
    assert (
        "+0.042 over the strongest, more than the seed spread"
        in study.answer({"seeds": seeds, "teacher-strength-a0.1": wider})[0]
    )
    strongest_best = strength.assign(gain=[0.05, -0.020, 0.034])
    assert (
        "; the strongest teacher taught best (spread 0.020)."
        in study.answer({"seeds": seeds, "teacher-strength": strongest_best})[0]
    )
    # without a three-seed table there is no spread to read a single seed against
    alone_unknown = study.answer({"teacher-strength": strength})[0]
    assert alone_unknown.endswith("+0.016 over the strongest, with no seed spread to read it against (spread nan).")


def test_answer_reads_the_patient_curves_best_epoch_against_the_short_schedule_spread():
    curves = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 1, 2, 3],
            "val_dice": [0.5, 0.8, 0.7, 0.6, 0.7, 0.74],
            "run": ["no-kd"] * 3 + ["kdas (alpha 0.05)"] * 3,
        }
    )
    seeds = _alone([0.60, 0.62, 0.64])
    (line,) = study.answer({"seeds": seeds, "patient": curves})
    assert line == (
        "patient: kdas (alpha 0.05) after 3 epochs (best validation 0.740, epoch 3) is below the student alone "
        "on the same schedule (0.800, epoch 2; -0.060; spread 0.020, measured on the short schedule)."
    )
    level = curves.assign(val_dice=[0.5, 0.8, 0.7, 0.6, 0.7, 0.81])
    assert (
        " is within the seed spread of the student alone on the same schedule "
        in study.answer({"seeds": seeds, "patient": level})[0]
    )
    alone_only = curves[curves.run == "no-kd"]
    assert study.answer({"patient": alone_only}) == [
        "No comparison with the student alone has been measured on these frames yet."
    ]
    assert " is not distinguishable, for lack of a seed spread, from " in study.answer({"patient": curves})[0]


def test_seed_spread_lists_arms_with_several_seeds_of_each_comparison_table():
    seeds = pd.DataFrame(
        {
            "arm": ["no-kd", "no-kd", "kdas", "kdas", "pixel"],
            "seed": [0, 1, 0, 1, 0],
            "validation": [0.6, 0.64, 0.7, 0.7, 0.5],
        }
    )
    spread = study.seed_spread({"ablation-a0.1": seeds, "teacher-curve": pd.DataFrame({"val_dice": [0.1, 0.9]})})
    assert spread[["table", "arm", "seeds"]].values.tolist() == [
        ["ablation-a0.1", "no-kd", 2],
        ["ablation-a0.1", "kdas", 2],
    ]
    assert spread["std"].tolist() == pytest.approx([0.04 / 2**0.5, 0.0])  # pixel: one seed, no spread
    assert study.seed_spread({"teacher-curve": pd.DataFrame()}).empty


@pytest.mark.slow
def test_the_miniature_study_runs_and_writes_its_tables(tiny):
    plan = study.StudyPlan(
        arms=("pixel",), alphas=(0.1, 0.3), seeds=1, teacher_epochs=(1,), patient_factor=2, labeller_seeds=1
    )
    sweep = study.alpha_sweep(tiny, plan, device="cpu", progress=False)
    assert list(zip(sweep.arm, sweep.alpha)) == [("pixel", 0.1), ("pixel", 0.3)]
    chosen = study.choose_alpha(sweep)
    seeds = study.seeds_table(tiny, chosen, plan, device="cpu", progress=False)
    assert set(seeds.arm) == {"no-kd", "pixel"}
    strength = study.teacher_strength(tiny, chosen, plan, device="cpu", progress=False)
    assert list(strength.teacher_epoch) == [1, "best"] and strength.gain.notna().all()
    scores = study.patient(tiny, "pixel", chosen["pixel"], plan, device="cpu", progress=False)
    assert list(scores.arm) == ["no-kd", "pixel"] and (scores.epochs == 2).all() and scores.validation.notna().all()
    assert scores.alpha.isna().tolist() == [True, False]
    curves = pd.read_csv(study.study_dir(tiny) / "patient.csv")
    assert curves.groupby("run", sort=False).epoch.max().to_dict() == {
        "no-kd": 2,
        f"pixel (alpha {chosen['pixel']:g})": 2,
    }
    partial = study.patient_curves(tiny, "kdas", 0.1, plan)  # a patient arm not started: its curve is left out
    assert set(partial.run) == {"no-kd"} and partial.epoch.tolist() == [1, 2]
    labelled = study.labeller(tiny, "pixel", chosen["pixel"], plan, device="cpu", progress=False)
    assert list(labelled.arm) == ["no-kd", "pixel"] and (labelled.label_fraction == 0.25).all()
    assert labelled.alpha.isna().tolist() == [True, False] and labelled.validation.notna().all()
    # the final comparison on seen and unseen sets (the quick profile's unseen set is Synthetic-Shift)
    table, arms = study.unseen(tiny, chosen, plan, device="cpu")
    assert sorted(zip(table.arm, table.label_fraction)) == [
        ("no-kd", 0.25),
        ("no-kd", 1.0),
        ("pixel", 0.25),
        ("pixel", 1.0),
        ("teacher", 1.0),
    ]
    splits = profile_splits(tiny)
    assert "unseen" in splits.domains.values() and set(splits.test) <= set(table.columns)
    alone = table[(table.arm == "no-kd") & (table.label_fraction == 1)].iloc[0]
    network = load_network(StudentRecipe("no-kd").folder(tiny, 0) / "best.pt")
    for name, pairs in splits.test.items():
        assert alone[name] == pytest.approx(mean_dice(network, pairs, tiny.image_size, "cpu"))
    assert alone["drop"] == pytest.approx(alone["seen"] - alone["unseen"])
    by = arms.set_index(["model", "scope"])
    label = f"pixel (alpha {chosen['pixel']:g})"
    pixel = table[(table.arm == "pixel") & (table.label_fraction == 1)].iloc[0]
    assert by.loc[(label, "unseen"), "gain"] == pytest.approx(pixel["unseen"] - alone["unseen"])  # one seed each
    assert by.loc[(label, "unseen"), "gain_low"] <= by.loc[(label, "unseen"), "gain_high"]
    quarter = table[table.label_fraction == 0.25].set_index("arm")["unseen"]
    gain = by.loc[(f"{label}, 25% of masks", "unseen"), "gain"]
    assert gain == pytest.approx(quarter["pixel"] - quarter["no-kd"])  # against the alone of the same fraction
    written = {p.stem for p in study.study_dir(tiny).glob("*.csv")}
    assert written == {
        "alpha",
        "seeds",
        "teacher-strength",
        "patient",
        "patient-scores",
        "labeller",
        "unseen",
        "unseen-arms",
    }
    assert study.teacher_curve(tiny)["epoch"].tolist() == [1, 2]
    # the ablation table of the chosen alpha holds the student alone and the arm, each run once
    table = pd.read_csv(StudentRecipe(alpha=chosen["pixel"]).table(tiny))
    assert sorted(zip(table.arm, table.seed)) == [("no-kd", 0), ("pixel", 0)]
    # exported where notebook 07 reads it: the study's steps and each ablation table, named by its settings
    results = study.study_dir(tiny).parent.parent / "results"
    written = study.export(tiny, results)
    assert (results / "study-quick" / "seeds.csv") in written and all(path.exists() for path in written)
    drawn = {path.name for path in written if path.suffix == ".png"}
    assert {
        "curves.png",
        "alpha.png",
        "teacher-strength.png",
        "unseen.png",
    } <= drawn  # the study's figures, with its tables
    loaded = study.load_results("quick", root=results)
    tag = f"ablation-a{chosen['pixel']:g}"  # the file name leaves out the default alpha (0.3); this name does not
    assert {"alpha", "seeds", "teacher-strength", "patient", "patient-scores", "teacher-curve", "labeller", tag} <= set(
        loaded
    )
    assert loaded[tag].equals(table)
    assert sum(line.startswith("labeller: pixel (1 seed") for line in study.answer(loaded)) == 1
    assert not any("-l0.25" in path.name for path in written)  # the labeller's runs are not an ablation table


def test_the_unseen_answer_reads_the_intervals():
    assert study.unseen_answer({})[0].startswith("unseen: not measured yet")
    rows = []
    for model, seeds, (seen, unseen), gain in (
        ("student alone", 3, (0.6, 0.3), None),
        ("kdas (alpha 0.05)", 3, (0.62, 0.36), (0.06, 0.02, 0.10)),
        ("pixel (alpha 0.3)", 3, (0.61, 0.29), (-0.01, -0.05, 0.03)),
    ):
        for scope, mean in (("seen", seen), ("unseen", unseen)):
            row = {"model": model, "scope": scope, "mean": mean, "low": mean - 0.05, "high": mean + 0.05}
            row |= {"frames": 39 if scope == "unseen" else 161, "seeds": seeds, "drop": seen - unseen}
            if gain:
                row |= dict(zip(("gain", "gain_low", "gain_high"), gain))
            rows.append(row)
    lines = study.unseen_answer({"unseen-arms": pd.DataFrame(rows)})
    assert lines[0] == (
        "unseen: student alone (3 seeds): seen 0.600 [0.550, 0.650], unseen 0.300 [0.250, 0.350] (39 frames), "
        "a drop of 0.300."
    )
    assert lines[1].endswith("+0.060 [+0.020, +0.100] against the student alone, an interval that excludes 0.")
    assert lines[2].endswith("-0.010 [-0.050, +0.030] against the student alone, not told apart from no gain.")
    assert len(lines) == 3  # a distilled arm is there: no line saying none is


SHARING_JOB = """
from kdas_utils import runs
from kdas_utils.config import get_profile

runs.share.WAIT_SECONDS = 0.2
tiny = get_profile("quick").replace(
    image_size=64, epochs=1, teacher_epochs=2, keep_epochs=(1,), max_steps_per_epoch=1, synthetic_train=16,
    synthetic_test=4,
)
with runs.share_runs():
    table = runs.run_ablation(tiny, {"no-kd": 2, "pixel": 2}, device="cpu", progress=False)
print("TABLE " + table.to_json(orient="records"))
"""


@pytest.mark.slow
def test_two_processes_share_the_runs_and_train_each_once(tiny, tmp_path, monkeypatch, capsys):
    """What ``kdas study --jobs 2`` starts: two processes (this one and another) work through the same
    teacher and ablation at once; each run is trained by one of them (one "backbone from" line each,
    the line a run prints as it starts training), the other waits for it, and both end with the same
    table."""
    profile_splits(tiny)  # the synthetic set, written once before the two start
    script = tmp_path / "job.py"
    script.write_text(SHARING_JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    other = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    monkeypatch.setattr(runs.share, "WAIT_SECONDS", 0.2)
    with runs.share_runs():
        table = runs.run_ablation(tiny, {"no-kd": 2, "pixel": 2}, device="cpu", progress=False)
    outputs = [capsys.readouterr().out, other.communicate(timeout=300)[0]]
    assert other.returncode == 0, outputs[1]
    started = [line.split(":")[0] for out in outputs for line in out.splitlines() if ": backbone from " in line]
    expected = ["teacher"] + [f"student-{arm}-s{seed}" for arm in ("no-kd", "pixel") for seed in (0, 1)]
    assert sorted(started) == sorted(expected), outputs
    theirs = pd.DataFrame(json.loads(outputs[1].split("TABLE ", 1)[1]))
    assert list(zip(table.arm, table.seed)) == [("no-kd", 0), ("pixel", 0), ("no-kd", 1), ("pixel", 1)]
    assert list(zip(theirs.arm, theirs.seed)) == list(zip(table.arm, table.seed))
    # the same checkpoints, scored on one thread there and two here: equal to rounding
    assert theirs.validation.tolist() == pytest.approx(table.validation.tolist(), abs=1e-5)


@pytest.mark.slow
def test_budget_step_trains_every_arm_and_teacher_once_and_resumes_from_its_tables(tiny, tmp_path, capsys):
    """The label-budget step on the tiny profile: each run of the plan trained once (the partial teacher
    once per seed, in its own folder), one row per run with every test set, seen and unseen, the frames
    behind the rows, the arms' table with paired gains; a second call trains and scores nothing."""
    plan = study.BudgetPlan(fractions=(0.5,), seeds=2, partial_fractions=(0.5,), partial_seeds=1, full_seeds=0)
    chosen = {"kdas": 0.1, "pixel": 0.3}
    rows, arms = study.budget(tiny, plan, device="cpu", chosen=chosen, progress=False)
    out = capsys.readouterr().out
    started = sorted(line.split(":")[0] for line in out.splitlines() if ": backbone from " in line)
    expected = ["teacher", "teacher-l0.5-s0"] + [f"student-{a}-l0.5-s{s}" for a in ("no-kd",) for s in (0, 1)]
    expected += [f"student-{a}-s{s}" for a in ("kdas-a0.1-l0.5", "pixel-l0.5") for s in (0, 1)]
    expected += ["student-kdas-a0.1-tl0.5-l0.5-s0", "student-pixel-tl0.5-l0.5-s0"]
    assert started == sorted(expected)
    assert len(rows) == 8 and set(rows.teacher) == {"full", "partial"}
    assert (rows.alpha[rows.arm == "kdas"] == 0.1).all() and rows.alpha[rows.arm == "no-kd"].isna().all()
    splits = profile_splits(tiny)
    for name in splits.test:
        assert rows[name].between(0, 1).all()
    seen, unseen = splits.of_domain("seen"), splits.of_domain("unseen")
    assert seen and unseen
    weights = {name: len(splits.test[name]) for name in splits.test}
    row = rows.iloc[0]
    pooled = sum(row[n] * weights[n] for n in unseen) / sum(weights[n] for n in unseen)
    assert row["unseen"] == pytest.approx(pooled)
    frames = pd.read_csv(study.study_dir(tiny) / "budget-frames.csv")
    assert len(frames) == 8 * sum(weights.values())
    kdas = arms[(arms.arm == "kdas") & (arms.teacher == "full")].iloc[0]
    assert kdas.seeds == 2 and kdas.seen_low <= kdas.seen <= kdas.seen_high
    mine = rows[(rows.arm == "kdas") & (rows.teacher == "full")]
    alone = rows[rows.arm == "no-kd"]
    assert kdas.seen_gain == pytest.approx(mine.seen.mean() - alone.seen.mean())  # the same frames and seeds
    partial = arms[(arms.arm == "pixel") & (arms.teacher == "partial")].iloc[0]
    assert partial.seeds == 1 and not pd.isna(partial.unseen_gain)  # against no-kd's seed 0 only
    lines = study.budget_answer(arms)
    assert lines[0].startswith("The student alone with 50% of the masks: ")
    assert lines[1].startswith("With 50% of the masks, over the student alone: KDAS ") and "pixel-wise KD" in lines[1]
    assert any(line.startswith("A teacher trained on the same 50% of the masks") for line in lines)
    assert study.plot_budget(arms).axes[0].get_xscale() == "log"
    again, _ = study.budget(tiny, plan, device="cpu", chosen=chosen, progress=False)
    assert ": backbone from " not in capsys.readouterr().out
    pd.testing.assert_frame_equal(again, pd.read_csv(study.study_dir(tiny) / "budget.csv"))


def test_budget_plan_orders_a_quarter_first_then_the_partial_teacher_then_every_mask():
    runs_ = study.budget_runs()
    assert runs_[:3] == [("no-kd", "full", 0.25, 0), ("kdas", "full", 0.25, 0), ("pixel", "full", 0.25, 0)]
    fractions = [f for _, t, f, _ in runs_ if t == "full"]
    assert fractions == sorted(fractions, key=[0.25, 0.1, 0.5, 1.0].index)
    partial = [r for r in runs_ if r[1] == "partial"]
    assert {(a, s) for a, _, _, s in partial} == {("kdas", 0), ("kdas", 1), ("pixel", 0), ("pixel", 1)}
    assert runs_.index(partial[0]) > max(i for i, r in enumerate(runs_) if r[2] == 0.5)
    assert len(runs_) == 3 * 3 * 3 + 4 + 3 * 3


def test_budget_plan_of_one_arm_keeps_its_runs_in_order_and_needs_no_other_alpha(tiny):
    alone = study.budget_runs(study.BudgetPlan(arms=("no-kd",)))
    assert alone == [run for run in study.budget_runs() if run[0] == "no-kd"] and len(alone) == 3 * 3 + 3
    with pytest.raises(ValueError, match="choose one or more of"):
        study.BudgetPlan(arms=("kd",))
    # no-kd alone asks for no alpha: the step goes on to its next check (the tiny profile's test sets)
    with pytest.raises(ValueError, match="no alpha chosen for \\['pixel'\\]"):
        study.budget(tiny, study.BudgetPlan(arms=("no-kd", "pixel")), chosen={"kdas": 0.1})
    from kdas_utils.cli import main

    with pytest.raises(SystemExit):
        main(["study", "--step", "budget", "--budget-arm", "teacher"])


def test_the_budget_answer_says_what_is_measured_and_what_is_not_yet():
    alone = {"arm": "no-kd", "teacher": "full", "label_fraction": 0.25, "seeds": 3, "seen": 0.436, "seen_low": 0.396}
    alone |= {"seen_high": 0.476, "unseen": 0.169, "unseen_low": 0.107, "unseen_high": 0.242}
    lines = study.budget_answer(pd.DataFrame([alone]))
    assert lines[0] == (
        "The student alone with 25% of the masks: 0.436 [0.396, 0.476] seen, 0.169 [0.107, 0.242] unseen (3 seeds)."
    )
    assert study.budget_answer(pd.DataFrame([alone | {"device": "cpu-fp32"}]))[0].endswith("(3 seeds, on cpu-fp32).")
    kdas = {"arm": "kdas", "teacher": "full", "label_fraction": 0.25, "seeds": 1, "seen": 0.506, "seen_low": 0.467}
    kdas |= {"seen_high": 0.545, "unseen": 0.215, "unseen_low": 0.147, "unseen_high": 0.29, "seen_gain": 0.077}
    kdas |= {"seen_gain_low": 0.051, "seen_gain_high": 0.102, "unseen_gain": 0.05, "unseen_gain_low": 0.011}
    kdas |= {"unseen_gain_high": 0.092, "device": "cpu-bf16"}
    for device, says in [
        ("cpu-fp32", "(1 seed, on cpu-bf16; the student alone on cpu-fp32: across devices)."),
        ("cpu-bf16", "(1 seed, on cpu-bf16)."),
    ]:
        both = study.budget_answer(pd.DataFrame([alone | {"device": device}, kdas]))
        assert both[1].startswith("With 25% of the masks, over the student alone: KDAS +0.077 [+0.051, +0.102] seen")
        assert both[1].endswith(says), both[1]
    half = alone | {"label_fraction": 0.5, "seen": 0.508, "device": "cpu-bf16"}
    for first, says in [("cpu-fp32", " (from runs on cpu-bf16 and cpu-fp32: across devices)."), ("cpu-bf16", ".")]:
        rate = [
            line
            for line in study.budget_answer(pd.DataFrame([alone | {"device": first}, half, kdas]))
            if line.startswith("Exchange rate")
        ]
        assert rate == [
            f"Exchange rate: KDAS with 25% of the masks scores what the student alone scores with 49% of them{says}"
        ]
    assert "Not measured yet: student alone with 10%, 50% of the masks." in lines
    assert "Not measured yet: KDAS with 25%, 10%, 50% of the masks." in lines
    assert lines[-1] == "Not measured yet: the teacher trained on the same masks."
    partial = kdas | {"teacher": "partial", "seeds": 2, "seen_gain": 0.021, "seen_gain_low": -0.004}
    partial |= {"seen_gain_high": 0.046, "unseen_gain": -0.012, "unseen_gain_low": -0.04, "unseen_gain_high": 0.015}
    said = study.budget_answer(pd.DataFrame([alone | {"device": "cpu-bf16"}, kdas, partial]))
    assert (
        "A teacher trained on the same 25% of the masks: KDAS +0.021 [-0.004, +0.046] seen, -0.012 [-0.040, +0.015] "
        "unseen over the student alone of the same seeds (2 seeds, on cpu-bf16); from the teacher that saw every "
        "mask +0.077 seen, +0.050 unseen (1 seed)." in said
    )
    assert "Not measured yet: the teacher trained on the same masks." not in said


def test_exchange_rate_interpolates_the_student_alone_in_log_share():
    arms = pd.DataFrame(
        {
            "arm": ["no-kd"] * 3 + ["kdas"],
            "teacher": ["full"] * 4,
            "label_fraction": [0.25, 0.5, 1.0, 0.25],
            "seen": [0.40, 0.50, 0.60, 0.55],
        }
    )
    assert study.exchange_rate(arms) == pytest.approx(2**-0.5)  # halfway from 0.5 to 1 in log share
    assert study.exchange_rate(arms.assign(seen=[0.4, 0.5, 0.6, 0.7])) == float("inf")
    assert study.exchange_rate(arms.assign(seen=[0.4, 0.5, 0.6, 0.3])) == 0.25


def test_the_recorded_alpha_of_each_profile_is_the_validation_choice_of_its_committed_sweep():
    """notebooks 04-06 distil at ``recorded_choice``: for the quick profile the sweep made with a quarter of
    the masks (its story's setting), for the standard one with every mask; both committed in results/."""
    from kdas_utils.config import project_root

    for name, fraction in (("quick", 0.25), ("standard", None)):
        sweep = pd.read_csv(project_root() / "results" / f"study-{name}" / "alpha.csv")
        if fraction is not None:
            assert set(sweep.label_fraction) == {fraction}
        best = sweep.loc[sweep.groupby("arm")["validation"].idxmax()].set_index("arm")["alpha"].to_dict()
        assert study.recorded_choice(get_profile(name)) == best == study.choose_alpha(sweep)


@pytest.mark.slow
def test_the_alpha_step_chooses_at_the_share_of_masks_asked_for(tiny):
    plan = study.StudyPlan(arms=("kdas",), alphas=(0.1, 0.3), alpha_fraction=0.5)
    sweep = study.alpha_sweep(tiny, plan, device="cpu", progress=False)
    assert list(sweep.label_fraction) == [0.5, 0.5] and list(sweep.alpha) == [0.1, 0.3]
    folders = sorted(p.name for p in (runs.checkpoint_dir("x", tiny).parent).glob("student-*"))
    assert folders == ["student-kdas-a0.1-l0.5-s0-quick", "student-kdas-l0.5-s0-quick"]
