"""The study run as one command: :func:`run_study` takes the steps of :mod:`.steps` and the budget step
(:mod:`.budget`) in order; what ``kdas study`` calls."""

from __future__ import annotations

from ..config import Profile
from ..runs import checkpoint_dir
from .budget import BudgetPlan, budget
from .steps import (
    StudyPlan,
    alpha_sweep,
    best_of,
    choose_alpha,
    labeller,
    patient,
    seeds_table,
    teacher_curve,
    teacher_strength,
    unseen,
)

# The steps of the study, in the order run_study takes them (the choices of ``kdas study --step``).
STEPS = ("alpha", "seeds", "teacher-strength", "labeller", "patient", "unseen", "budget")
# Steps that read the alphas recorded by the alpha step instead of running it.
RECORDED_ALPHA_STEPS = {"unseen", "budget"}


def run_study(
    profile: Profile,
    plan: StudyPlan | None = None,
    device=None,
    steps=STEPS,
    strict: bool = False,
    budget_plan: BudgetPlan | None = None,
    **changes,
) -> dict:
    """The study's ``steps`` (names of :data:`STEPS`) in order, each resumable (finished runs are
    loaded); what ``kdas study`` runs. Returns the tables of the steps run, by name (``alpha``,
    ``chosen``, ``seeds``, ``teacher-strength``, ``labeller``, ``patient``, ``unseen``,
    ``unseen-arms``), and ``notes`` (what was left out, in words).

    The alpha step runs for every step but ``unseen`` and ``budget`` (the others need its choice); ``seeds``
    also runs for ``labeller`` and ``patient``, which train its best arm. ``steps=("unseen",)`` alone trains
    nothing: it scores the finished runs at the alphas the alpha step recorded. ``budget``
    (:func:`~kdas_utils.study.budget.budget`) trains at those alphas too. An unseen or budget step that
    cannot run (no unseen test set, no finished run, no recorded alpha) raises its ``ValueError`` with
    ``strict``, else is left out with a note. ``budget_plan``: the budget step's size and arms (default
    :class:`~kdas_utils.study.budget.BudgetPlan`).
    The teacher's curve (:func:`teacher_curve`) is written when the teacher has started.
    ``changes``: TrainConfig overrides, e.g. ``epochs=3`` (see :func:`_ablation`).
    """
    plan = plan or StudyPlan()
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise ValueError(f"unknown study step(s) {unknown}; choose among {list(STEPS)}")
    tables, wanted = {"notes": []}, set(steps)
    if wanted - RECORDED_ALPHA_STEPS:
        tables["alpha"] = alpha_sweep(profile, plan, device, **changes)
        tables["chosen"] = chosen = choose_alpha(tables["alpha"])
        if {"seeds", "labeller", "patient"} & wanted:
            tables["seeds"] = seeds_table(profile, chosen, plan, device, **changes)
        if "teacher-strength" in wanted:
            tables["teacher-strength"] = teacher_strength(profile, chosen, plan, device, **changes)
        if {"labeller", "patient"} & wanted:
            best = best_of(tables["seeds"], chosen)
            if "labeller" in wanted:
                tables["labeller"] = labeller(profile, best, chosen[best], plan, device, **changes)
            if "patient" in wanted:
                tables["patient"] = patient(profile, best, chosen[best], plan, device, **changes)
    if "unseen" in wanted:
        try:
            tables["unseen"], tables["unseen-arms"] = unseen(profile, tables.get("chosen"), plan, device)
        except ValueError as error:
            if strict:
                raise
            tables["notes"].append(f"unseen step left out: {error}")
    if "budget" in wanted:
        try:
            tables["budget"], tables["budget-arms"] = budget(
                profile, budget_plan or BudgetPlan(), device=device, chosen=tables.get("chosen"), **changes
            )
        except ValueError as error:
            if strict:
                raise
            tables["notes"].append(f"budget step left out: {error}")
    if (checkpoint_dir("teacher", profile) / "last.pt").exists():
        tables["teacher-curve"] = teacher_curve(profile)
    return tables
