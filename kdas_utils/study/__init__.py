"""When does distillation help? The study behind notebook 07, as resumable runs.

Five questions, each answered on the validation split (never on a test set), each a table that
:func:`~kdas_utils.runs.run_ablation` fills from checkpoints (finished runs are loaded):

1. **alpha**: each distillation arm (``kdas``, ``pixel``) at several weights, one seed each;
   the weight with the best validation Dice is *chosen* (:func:`choose_alpha`).
2. **seeds**: ``no-kd`` and each arm at its chosen alpha, several seeds, scored with the share
   of the teacher-student gap it closes (:func:`kdas_utils.evaluate.gap_closed`).
3. **teacher strength**: each arm at its chosen alpha, distilled from the teacher's snapshots of
   earlier epochs (weaker teachers) as well as from the final teacher: does a stronger teacher
   teach better (Cho and Hariharan 2019 found an early-stopped one can teach better)?
4. **patience**: ``no-kd`` and the best arm trained several times longer: does the gap open
   once the student alone stops improving (Beyer et al. 2022)?
5. **the teacher as a labeller**: ``no-kd`` and the best arm when the students see only a share of
   the masks and the distilled one sees the teacher's maps on every frame (Xie et al. 2020).
6. **the label budget** (:mod:`~kdas_utils.study.budget`): ``no-kd``, ``kdas`` and ``pixel`` at 10%, 25%,
   50% and every mask, from the teacher that saw every mask and from one that saw the same masks as
   the student: how many masks is a teacher worth?

:func:`answer` states in sentences what the measured tables show.

The package's rooms: :mod:`~kdas_utils.study.steps` (the steps, each writing one table),
:mod:`~kdas_utils.study.budget` (the label-budget step), :mod:`~kdas_utils.study.run` (:func:`run_study`,
which ``kdas study`` calls), :mod:`~kdas_utils.study.results` (load, export
with the figures, read against the student alone) and :mod:`~kdas_utils.study.verdict` (the answer
in sentences). Figures are drawn by :func:`kdas_utils.plots.study_figures`.

Every step writes its table under ``runs/study-<profile>/``; ``kdas study --profile standard``
runs them in order and can be stopped and started again at any time.
"""

from .budget import BudgetPlan, budget, budget_answer, budget_arms, budget_runs, exchange_rate, plot_budget
from .results import UNSEEN_TABLES, against_alone, curves, export, figures, load_results, seed_spread
from .run import RECORDED_ALPHA_STEPS, STEPS, run_study
from .steps import (
    StudyPlan,
    alpha_sweep,
    best_of,
    choose_alpha,
    chosen_alpha,
    final_runs,
    labeller,
    patient,
    patient_curves,
    recorded_choice,
    run_history,
    seeds_table,
    study_dir,
    teacher_curve,
    teacher_strength,
    unseen,
)
from .verdict import answer, unseen_answer

__all__ = [
    "RECORDED_ALPHA_STEPS",
    "STEPS",
    "BudgetPlan",
    "budget",
    "budget_answer",
    "budget_arms",
    "budget_runs",
    "exchange_rate",
    "UNSEEN_TABLES",
    "StudyPlan",
    "against_alone",
    "alpha_sweep",
    "answer",
    "best_of",
    "choose_alpha",
    "chosen_alpha",
    "curves",
    "export",
    "figures",
    "final_runs",
    "labeller",
    "load_results",
    "patient",
    "patient_curves",
    "plot_budget",
    "recorded_choice",
    "run_history",
    "run_study",
    "seed_spread",
    "seeds_table",
    "study_dir",
    "teacher_curve",
    "teacher_strength",
    "unseen",
    "unseen_answer",
]
