"""Runs: which network to train or load for a profile, where it lives, and the ablation of arms.

In parts: :mod:`.splits` (a profile's data), :mod:`.store` (run folders, finished or not, load / resume
/ train), :mod:`.share` (several processes on the same runs), :mod:`.teacher`, :mod:`.recipe`
(:class:`StudentRecipe`), :mod:`.student` and :mod:`.ablation`.

The training loop itself is :mod:`kdas_utils.engine`; this module decides *which* run (the
teacher, or a student described by a :class:`StudentRecipe`), finds or resumes its checkpoints
and calls the engine. Notebooks 02 to 07 and the ``kdas`` command call these, so that a profile
means the same data, split and settings everywhere::

    from kdas_utils.config import get_profile
    from kdas_utils.runs import StudentRecipe, train_student, train_teacher
    run = train_teacher(get_profile("quick"))          # loads runs/checkpoints/teacher-quick/best.pt if present
    run.model, run.source, run.history
    student = train_student(get_profile("quick"), StudentRecipe("kdas", alpha=0.1), seed=0)


Scoring lives in :mod:`kdas_utils.evaluate`, figures in :mod:`kdas_utils.plots`.
"""

from ..kdas import ARMS
from .ablation import claim_run, claim_runs, finished_plan, run_ablation, write_csv
from .recipe import RECIPE_FIELDS, StudentRecipe
from .share import WAIT_SECONDS, share_runs, sharing
from .splits import SPLIT_SEED, VAL_FRACTION, Splits, figure_samples, profile_datasets, profile_root, profile_splits
from .store import (
    Run,
    checkpoint_dir,
    epoch_seconds,
    finished_state,
    plan_line,
    teacher_dir,
    teacher_snapshot,
    train_or_load,
)
from .student import train_student, trained_checkpoints
from .teacher import summarize_teacher, train_teacher

__all__ = [
    "ARMS",
    "RECIPE_FIELDS",
    "Run",
    "SPLIT_SEED",
    "Splits",
    "StudentRecipe",
    "VAL_FRACTION",
    "WAIT_SECONDS",
    "checkpoint_dir",
    "claim_run",
    "claim_runs",
    "epoch_seconds",
    "figure_samples",
    "finished_plan",
    "finished_state",
    "plan_line",
    "profile_datasets",
    "profile_root",
    "profile_splits",
    "run_ablation",
    "share_runs",
    "sharing",
    "summarize_teacher",
    "teacher_dir",
    "teacher_snapshot",
    "train_or_load",
    "train_student",
    "train_teacher",
    "trained_checkpoints",
    "write_csv",
]
