"""The study's steps: each trains (or loads) its runs and writes one table under
``runs/study-<profile>/``; :func:`run_study` runs them in order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Profile, project_root, runs_dir
from ..engine import load_checkpoint
from ..evaluate import average_seeds, domain_table, frame_dice, mean_dice
from ..kdas import ALPHA
from ..models import load_network, load_trained
from ..runs import (
    StudentRecipe,
    checkpoint_dir,
    claim_runs,
    finished_state,
    profile_splits,
    run_ablation,
    sharing,
    teacher_snapshot,
    write_csv,
)


@dataclass(frozen=True)
class StudyPlan:
    """The size of the study.

    Attributes:
        arms: the distillation arms compared with ``no-kd``.
        alphas: the weights tried for each arm (seed 0).
        seeds: seeds of ``no-kd`` and of each arm at its chosen alpha.
        teacher_epochs: teacher snapshots to distil from (the final teacher is always included).
        patient_factor: the long schedule, in multiples of the profile's student epochs.
        label_fraction: the share of training frames whose masks the students of the labeller
            step see (:func:`labeller`).
        alpha_fraction: the share of the masks at which the alpha step chooses (1: every mask, as the
            standard study did; the quick profile chooses at a quarter, where its story is told).
        labeller_seeds: seeds of ``no-kd`` and of the arm in the labeller step.
    """

    arms: tuple[str, ...] = ("kdas", "pixel")
    alphas: tuple[float, ...] = (0.05, 0.1, 0.3)
    seeds: int = 3
    teacher_epochs: tuple[int, ...] = (3, 10)
    patient_factor: int = 4
    label_fraction: float = 0.25
    labeller_seeds: int = 2
    alpha_fraction: float = 1.0


def study_dir(profile: Profile) -> Path:
    """``runs/study-<profile>``: the study's tables and figures."""
    return runs_dir() / f"study-{profile.name}"


def _ablation(profile: Profile, plan: dict[str, int], device, changes: dict, teacher=None, csv=None, **fields):
    """:func:`~kdas_utils.runs.run_ablation` of ``plan`` with the recipe of ``fields`` (e.g.
    ``alpha=0.1``); ``changes`` are the study's TrainConfig overrides (``kdas study --epochs``
    among them, which the recipe takes unless ``fields`` sets it)."""
    recipe, rest = StudentRecipe.split(changes, **fields)
    return run_ablation(profile, plan, recipe, teacher=teacher, device=device, csv=csv, **rest)


def alpha_sweep(profile: Profile, plan: StudyPlan = StudyPlan(), device=None, **changes):
    """Seed 0 of every arm of ``plan`` at every alpha, the students seeing ``plan.alpha_fraction`` of the
    masks: one row per (arm, alpha), scored on the validation split and the test sets. Written to
    ``study-<profile>/alpha.csv`` (with the column ``label_fraction``)."""
    tables = []
    fraction = {"label_fraction": plan.alpha_fraction} if plan.alpha_fraction != 1 else {}
    for alpha in plan.alphas:
        table = _ablation(profile, {arm: 1 for arm in plan.arms}, device, changes, alpha=alpha, **fraction)
        tables.append(table.assign(alpha=alpha, label_fraction=plan.alpha_fraction))
    table = pd.concat(tables, ignore_index=True)
    _write(table, profile, "alpha")
    return table


def choose_alpha(sweep) -> dict[str, float]:
    """``{arm: alpha}``: for each arm, the alpha with the highest validation Dice in ``sweep``
    (:func:`alpha_sweep`'s table). Only the validation column is read."""
    best = sweep.loc[sweep.groupby("arm", sort=False)["validation"].idxmax()]
    return {row.arm: float(row.alpha) for row in best.itertuples()}


def seeds_table(profile: Profile, chosen: dict[str, float], plan: StudyPlan = StudyPlan(), device=None, **changes):
    """``no-kd`` and each arm at its chosen alpha, ``plan.seeds`` seeds each, in one table
    (column ``alpha``: ``NaN`` for ``no-kd``). Written to ``study-<profile>/seeds.csv``; each
    alpha's ablation table (:meth:`~kdas_utils.runs.StudentRecipe.table`) holds ``no-kd`` and the arms
    chosen at that alpha."""
    tables = []
    for alpha in dict.fromkeys(chosen.values()):
        plan_here = {"no-kd": plan.seeds} | {arm: plan.seeds for arm, a in chosen.items() if a == alpha}
        table = _ablation(profile, plan_here, device, changes, alpha=alpha)
        tables.append(table.assign(alpha=_alpha_column(table, alpha)))
    table = pd.concat(tables, ignore_index=True).drop_duplicates(["arm", "seed", "alpha"])
    _write(table, profile, "seeds")
    return table


def teacher_strength(profile: Profile, chosen: dict[str, float], plan: StudyPlan = StudyPlan(), device=None, **changes):
    """Each arm at its chosen alpha (seed 0) distilled from each teacher snapshot of
    ``plan.teacher_epochs`` and from the final teacher, with the teacher's own validation Dice
    and the student's gain over the mean of ``no-kd``'s seeds. Written to
    ``study-<profile>/teacher-strength.csv``."""
    splits = profile_splits(profile)
    alone = _ablation(profile, {"no-kd": plan.seeds}, device, changes)["validation"].mean()
    if sharing():  # side by side (kdas study --jobs): first every run nobody holds, then the loop loads them
        for epoch in (*plan.teacher_epochs, None):
            teacher = load_trained(_teacher_path(profile, epoch), device or "cpu")
            for arm, alpha in chosen.items():
                recipe, rest = StudentRecipe.split(changes, alpha=alpha, teacher_epoch=epoch)
                claim_runs(profile, {arm: 1}, recipe, teacher, device, **rest)
    rows = []
    for epoch in (*plan.teacher_epochs, None):
        teacher = load_trained(_teacher_path(profile, epoch), device or "cpu")
        teacher_dice = mean_dice(teacher, splits.val, profile.image_size, device)
        for arm, alpha in chosen.items():
            row = (
                _ablation(profile, {arm: 1}, device, changes, teacher=teacher, alpha=alpha, teacher_epoch=epoch)
                .iloc[0]
                .to_dict()
            )
            rows.append(
                {
                    "teacher_epoch": epoch or "best",
                    "teacher_validation": teacher_dice,
                    "alpha": alpha,
                    **row,
                    "gain": row["validation"] - alone,
                }
            )
    table = pd.DataFrame(rows)
    _write(table, profile, "teacher-strength")
    return table


def _teacher_path(profile: Profile, epoch: int | None) -> Path:
    """The teacher of :func:`teacher_strength`'s ``epoch``: its snapshot, or the final ``best.pt`` (``None``)."""
    return teacher_snapshot(profile, epoch) if epoch else checkpoint_dir("teacher", profile) / "best.pt"


def patient(profile: Profile, arm: str, alpha: float, plan: StudyPlan = StudyPlan(), device=None, **changes):
    """``no-kd`` and ``arm`` (seed 0) trained ``plan.patient_factor`` times the profile's epochs,
    each scored like the ablation from its best checkpoint. Writes the scores to
    ``study-<profile>/patient-scores.csv`` (columns ``alpha``, NaN for ``no-kd``, and ``epochs``)
    and both validation curves to ``study-<profile>/patient.csv`` (:func:`patient_curves`).
    Returns the scores."""
    epochs = profile.epochs * plan.patient_factor
    csv = study_dir(profile) / "patient-scores.csv"
    scores = _ablation(profile, {"no-kd": 1, arm: 1}, device, changes, csv=csv, alpha=alpha, epochs=epochs)
    scores = scores.assign(alpha=_alpha_column(scores, alpha), epochs=epochs)
    _write(scores, profile, "patient-scores")
    patient_curves(profile, arm, alpha, plan)
    return scores


def labeller(profile: Profile, arm: str, alpha: float, plan: StudyPlan = StudyPlan(), device=None, **changes):
    """The teacher as a labeller: ``no-kd`` and ``arm`` (at ``alpha``, from the final teacher),
    ``plan.labeller_seeds`` seeds each, when the students see the masks of only
    ``plan.label_fraction`` of the training frames (drawn from each seed, the same for both arms
    of a seed; :class:`~kdas_utils.data.PartialLabels`) and the distilled one sees the teacher's
    maps on every frame. Scored like the ablation; written to ``study-<profile>/labeller.csv``
    (columns ``label_fraction`` and ``alpha`` added; ``alpha`` is NaN for ``no-kd``)."""
    csv = study_dir(profile) / "labeller.csv"
    seeds = {"no-kd": plan.labeller_seeds, arm: plan.labeller_seeds}
    _ablation(profile, seeds, device, changes, csv=csv, alpha=alpha, label_fraction=plan.label_fraction)
    table = pd.read_csv(csv)  # with the rows of earlier calls (other seeds)
    table = table.assign(label_fraction=plan.label_fraction, alpha=_alpha_column(table, alpha))
    _write(table, profile, "labeller")
    return table


def best_of(seeds, chosen: dict[str, float]) -> str:
    """The arm of ``chosen`` with the highest mean validation Dice over its seeds in ``seeds``
    (:func:`seeds_table`'s table): the one the patient and labeller steps train."""
    return max(chosen, key=lambda arm: seeds[seeds.arm == arm]["validation"].mean())


def final_runs(profile: Profile, chosen: dict[str, float], plan: StudyPlan = StudyPlan()) -> list[dict]:
    """The finished runs of the final comparison, as ``{arm, alpha, label_fraction, seed, path}``:
    the student alone and each arm at its ``chosen`` alpha (``plan.seeds`` seeds), the labeller
    step's two arms at ``plan.label_fraction`` (``plan.labeller_seeds``), and the teacher (seed 0).
    Nothing is trained; a run that has not finished all its epochs is left out."""
    wanted = [("no-kd", float("nan"), 1.0, plan.seeds)]
    wanted += [(arm, alpha, 1.0, plan.seeds) for arm, alpha in chosen.items()]
    wanted += [("no-kd", float("nan"), plan.label_fraction, plan.labeller_seeds)]
    wanted += [(arm, alpha, plan.label_fraction, plan.labeller_seeds) for arm, alpha in chosen.items()]
    runs = []
    teacher = checkpoint_dir("teacher", profile)
    if finished_state(teacher, profile.teacher_epochs) is not None:
        runs.append({"arm": "teacher", "alpha": float("nan"), "label_fraction": 1.0, "seed": 0})
        runs[-1]["path"] = teacher / "best.pt"
    for arm, alpha, fraction, seeds in wanted:
        for seed in range(seeds):
            recipe = StudentRecipe(arm, label_fraction=fraction, **({} if arm == "no-kd" else {"alpha": alpha}))
            folder = recipe.folder(profile, seed)
            if finished_state(folder, profile.epochs) is not None:
                runs.append({"arm": arm, "alpha": alpha, "label_fraction": fraction, "seed": seed})
                runs[-1]["path"] = folder / "best.pt"
    return runs


def unseen(profile: Profile, chosen: dict[str, float] | None = None, plan: StudyPlan = StudyPlan(), device=None):
    """The final comparison on every test set, seen and unseen (issue: does distillation help on
    polyps from hospitals the networks never saw?). Scores the finished runs of :func:`final_runs`
    (nothing is trained) on the test sets of the data root and of ``$KDAS_TEST_ROOTS``, per frame
    (Dice at 0.5, :func:`~kdas_utils.evaluate.frame_dice`), and writes two tables under
    ``study-<profile>/``:

    - ``unseen.csv``: one row per run (``arm``, ``alpha``, ``label_fraction``, ``seed``), the mean
      Dice of each test set (one column per set, e.g. ``CVC-ColonDB``), ``seen`` and ``unseen`` (the
      frames of a domain pooled) and ``drop`` (seen minus unseen);
    - ``unseen-arms.csv``: per arm, each frame's Dice averaged over the arm's seeds, then
      :func:`~kdas_utils.evaluate.domain_table` (95% percentile-bootstrap intervals over frames) with
      ``gain`` = the arm minus the student alone *of the same label fraction* on the same frames
      (paired interval).

    ``chosen`` (``{arm: alpha}``, see :func:`choose_alpha`) defaults to the choice recorded in
    ``study-<profile>/alpha.csv``, else in the project's ``results/``. Returns both tables.
    """
    if chosen is None:
        chosen = recorded_choice(profile)
    splits = profile_splits(profile)
    if "unseen" not in splits.domains.values():
        raise ValueError(
            f"the {profile.name} profile's test sets {list(splits.test)} hold no unseen set: name a root of "
            f"unseen sets with $KDAS_TEST_ROOTS or --test-root (e.g. ../shared/data/unseen256)"
        )
    runs = final_runs(profile, chosen, plan)
    if not runs:
        raise ValueError(f"no finished run of the {profile.name} profile's final comparison under {runs_dir()}")
    rows, frames, fractions = [], {}, {}
    for run in runs:
        model = load_network(run.pop("path"))
        per_set = {name: frame_dice(model, pairs, profile.image_size, device) for name, pairs in splits.test.items()}
        pooled = {
            which: np.concatenate([v for name, v in per_set.items() if splits.domains[name] == which])
            for which in ("seen", "unseen")
        }
        rows.append(
            run
            | {name: float(v.mean()) for name, v in per_set.items()}
            | {which: float(v.mean()) for which, v in pooled.items()}
            | {"drop": float(pooled["seen"].mean() - pooled["unseen"].mean())}
        )
        label = _run_label(run)
        frames.setdefault(label, []).append(per_set)
        fractions[label] = run["label_fraction"]
    table = pd.DataFrame(rows)
    arms = []
    for fraction in dict.fromkeys(table.label_fraction):
        group = {label: seeds for label, seeds in frames.items() if fractions[label] == fraction}
        averaged = average_seeds(group)
        alone = _run_label({"arm": "no-kd", "alpha": float("nan"), "label_fraction": fraction})
        domains = domain_table(averaged, splits.domains, baseline=alone if alone in averaged else None)
        domains = domains.reset_index()
        domains["seeds"] = domains.model.map({label: len(s) for label, s in group.items()})
        arms.append(domains.assign(label_fraction=fraction))
    arms = pd.concat(arms, ignore_index=True)
    _write(table, profile, "unseen")
    _write(arms, profile, "unseen-arms")
    return table, arms


def recorded_choice(profile: Profile) -> dict[str, float]:
    """The alphas chosen by the study's alpha step (:func:`choose_alpha` of ``alpha.csv``), read from
    ``study-<profile>/`` under the runs folder, else from the project's ``results/``; ``{}`` if neither
    holds one."""
    table = _recorded_table(profile)
    return choose_alpha(table) if table is not None else {}


def chosen_alpha(profile: Profile, arm: str = "kdas") -> tuple[float, str]:
    """``(alpha, where it comes from)`` for ``arm``: the study's validation choice for the profile
    (:func:`recorded_choice`), else the released code's weight (:data:`~kdas_utils.kdas.ALPHA`), said so.
    What notebooks 04 to 06 distil with."""
    chosen = recorded_choice(profile)
    if arm not in chosen:
        return ALPHA, f"the released code's (no alpha sweep is recorded for the {profile.name} profile)"
    table = _recorded_table(profile)
    fraction = float(table.label_fraction.iloc[0]) if "label_fraction" in table else 1.0
    masks = "every mask" if fraction == 1 else f"{fraction:.0%} of the masks"
    return chosen[arm], f"chosen on the validation split among {sorted(set(table.alpha))}, with {masks}"


def _recorded_table(profile: Profile):
    for root in (study_dir(profile).parent, project_root() / "results"):
        path = root / f"study-{profile.name}" / "alpha.csv"
        if path.exists():
            return pd.read_csv(path)
    return None


def _run_label(run: dict) -> str:
    """``"student alone"``, ``"teacher"``, ``"kdas (alpha 0.05)"``, with ``", 25% of masks"`` for a
    label fraction below 1: the model names of ``unseen-arms.csv``."""
    if run["arm"] == "teacher":
        label = "teacher"
    elif run["arm"] == "no-kd":
        label = "student alone"
    else:
        label = f"{run['arm']} (alpha {run['alpha']:g})" if not math.isnan(run["alpha"]) else run["arm"]
    return label if run["label_fraction"] >= 1 else f"{label}, {run['label_fraction']:.0%} of masks"


def patient_curves(profile: Profile, arm: str, alpha: float, plan: StudyPlan = StudyPlan()):
    """The validation curves of the patient runs as far as they have trained (nothing is trained
    here): ``no-kd`` and ``arm`` at ``plan.patient_factor`` times the profile's epochs, seed 0,
    one row per epoch with the column ``run``. Written to ``study-<profile>/patient.csv``; a run
    that has not started is left out."""
    epochs = profile.epochs * plan.patient_factor
    runs = {
        "no-kd": StudentRecipe("no-kd", epochs=epochs).folder(profile, 0),
        _patient_label(arm, alpha): StudentRecipe(arm, alpha=alpha, epochs=epochs).folder(profile, 0),
    }
    tables = [run_history(folder).assign(run=label) for label, folder in runs.items() if (folder / "last.pt").exists()]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["epoch", "val_dice", "run"])
    _write(table, profile, "patient")
    return table


def _patient_label(arm: str, alpha: float) -> str:
    return f"{arm} (alpha {alpha:g})"


def run_history(folder: Path):
    """A training run's epoch history (finished or not) from ``folder/last.pt``, one row per epoch."""
    return pd.DataFrame(load_checkpoint(Path(folder) / "last.pt")["history"])


def teacher_curve(profile: Profile):
    """The teacher run's validation curve (epoch, train loss, validation Dice, seconds) from its
    ``last.pt``; written to ``study-<profile>/teacher-curve.csv``."""
    table = run_history(checkpoint_dir("teacher", profile))[["epoch", "train_loss", "val_loss", "val_dice", "seconds"]]
    _write(table, profile, "teacher-curve")
    return table


def _alpha_column(table, alpha: float) -> list[float]:
    """The ``alpha`` column of a study table: ``alpha`` for each distilled arm, NaN for ``no-kd``."""
    return [float("nan") if arm == "no-kd" else alpha for arm in table.arm]


def _write(table, profile: Profile, name: str) -> Path:
    return write_csv(table, study_dir(profile) / f"{name}.csv")
