"""The ablation: a student for each arm and seed of a plan, scored, in one table (and the plan of what
has finished)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from torch import nn

from ..config import Profile
from ..evaluate import score_run
from ..files import atomic_path
from ..kdas import ARMS
from ..plots import plot_ablation, save_figure
from .recipe import StudentRecipe
from .share import Busy, sharing
from .splits import profile_splits
from .store import finished_state
from .student import refuse_loose, teacher_for, train_student


def ablation_order(plan: dict[str, int]) -> list[tuple[int, str]]:
    """``(seed, arm)`` of ``plan`` in the order they train: seed 0 of every arm first."""
    return [(seed, arm) for seed in range(max(plan.values(), default=0)) for arm, n in plan.items() if seed < n]


def ablation_teacher(profile: Profile, plan: dict[str, int], recipe: StudentRecipe, teacher, device):
    """``teacher``, or the recipe's teacher (:func:`teacher_for`) when an arm of ``plan`` needs one; ``None``
    for a partial teacher (:attr:`StudentRecipe.teacher_fraction`), which is each seed's own."""
    if teacher is None and recipe.teacher_fraction == 1 and any(ARMS[arm] is not None for arm in plan):
        teacher = teacher_for(profile, recipe, 0, device, "the ablation")
    return teacher


def claim_runs(
    profile: Profile,
    plan: dict[str, int],
    recipe: StudentRecipe = StudentRecipe(),
    teacher: nn.Module | None = None,
    device=None,
    **changes,
) -> None:
    """Inside :func:`share_runs`: train the runs of ``plan`` (as :func:`run_ablation` would) that no
    other process holds, and leave those it holds to it; finished runs are passed over. Scores nothing."""
    teacher = ablation_teacher(profile, plan, recipe, teacher, device)
    for seed, arm in ablation_order(plan):
        claim_run(profile, recipe.but(arm=arm), seed, teacher=teacher, device=device, **changes)


def claim_run(
    profile: Profile, recipe: StudentRecipe, seed: int, teacher: nn.Module | None = None, device=None, **changes
) -> bool:
    """Train (or load) the student of ``recipe`` and ``seed`` unless another live process holds its
    folder; ``False`` when it does (the run is left to it). Scores nothing."""
    try:
        train_student(profile, recipe, seed, teacher=teacher, device=device, when_busy="skip", **changes)
    except Busy:
        return False
    return True


def run_ablation(
    profile: Profile,
    plan: dict[str, int],
    recipe: StudentRecipe = StudentRecipe(),
    teacher: nn.Module | None = None,
    device=None,
    csv: str | Path | None = None,
    **changes,
) -> pd.DataFrame:
    """Train (or load) a student for each arm and seed of ``plan`` (``{arm: number of seeds}``),
    each with the settings of ``recipe`` (its arm replaced by the plan's), and score it with
    :func:`kdas_utils.evaluate.score_run`: mean Dice at 0.5 on the validation split and on every
    test set.

    Seed 0 of every arm runs first, then the further seeds, so that a run cut short still covers
    every arm. Inside :func:`share_runs`, :func:`claim_runs` trains first what no other process
    holds, then the loop waits for the others' runs. Rows are written to ``csv`` (default
    :meth:`StudentRecipe.table`) as they finish, beside the rows of other arms and seeds already there
    (a row of the same arm and seed is replaced); finished runs are loaded, not retrained, so calling
    it again continues the plan.
    The plot of this call's rows (:func:`~kdas_utils.plots.plot_ablation`) is saved beside the CSV
    under the same name. Returns the rows of this call.
    """
    refuse_loose(changes, "run_ablation")
    if recipe.teacher_int8:
        raise ValueError("teacher_int8 trains one run in its own folder; leave it out of an ablation")
    unknown = [arm for arm in plan if arm not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose among {list(ARMS)}")
    csv = Path(csv) if csv else recipe.table(profile)
    splits = profile_splits(profile)
    teacher = ablation_teacher(profile, plan, recipe, teacher, device)
    if sharing():
        claim_runs(profile, plan, recipe, teacher, device, **changes)
    rows = []
    for seed, arm in ablation_order(plan):
        run = train_student(profile, recipe.but(arm=arm), seed, teacher=teacher, device=device, **changes)
        rows.append({"arm": arm, "seed": seed, **score_run(run, splits, profile.image_size, device)})
        merge_rows(csv, pd.DataFrame(rows))
    table = pd.DataFrame(rows)
    if rows:
        fig = plot_ablation(table)
        save_figure(fig, csv.stem, csv.parent)
        plt.close(fig)  # saved; a notebook shows it when it asks for it (plots.plot_ablation)
    return table


def merge_rows(csv: Path, rows: pd.DataFrame) -> None:
    """Write ``rows`` into ``csv``, keeping its rows of other (arm, seed) pairs; atomically."""
    if csv.exists():
        old = pd.read_csv(csv)
        keep = ~old.set_index(["arm", "seed"]).index.isin(rows.set_index(["arm", "seed"]).index)
        rows = pd.concat([old[keep], rows], ignore_index=True)
    write_csv(rows, csv)


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """``table`` to ``path`` (no index), whole or not at all: written under a name of this process's
    own, then renamed (processes that share the runs, :func:`share_runs`, write the same tables)."""
    with atomic_path(path, per_process=True) as partial:
        table.to_csv(partial, index=False)
    return path


def finished_plan(profile: Profile, recipe: StudentRecipe = StudentRecipe()) -> dict[str, int]:
    """``{arm: n}`` for the arms whose seeds ``0 .. n-1`` have all finished training (``n >= 1``)
    with the settings of ``recipe`` (its arm aside): the plan that scores what is done and trains
    nothing (``kdas distill --ablation finished``)."""
    plan = {}
    for arm in ARMS:
        seeds = 0
        while finished_state(recipe.but(arm=arm).folder(profile, seeds), recipe.epochs or profile.epochs) is not None:
            seeds += 1
        if seeds:
            plan[arm] = seeds
    return plan
