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

:func:`answer` states in sentences what the measured tables show.

Every step writes its table under ``runs/study-<profile>/``; ``kdas study --profile standard``
runs them in order and can be stopped and started again at any time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .config import Profile, runs_dir
from .distill import ALPHA


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
        labeller_seeds: seeds of ``no-kd`` and of the arm in the labeller step.
    """

    arms: tuple[str, ...] = ("kdas", "pixel")
    alphas: tuple[float, ...] = (0.05, 0.1, 0.3)
    seeds: int = 3
    teacher_epochs: tuple[int, ...] = (3, 10)
    patient_factor: int = 4
    label_fraction: float = 0.25
    labeller_seeds: int = 2


def study_dir(profile: Profile) -> Path:
    """``runs/study-<profile>``: the study's tables and figures."""
    return runs_dir() / f"study-{profile.name}"


def _ablation(profile: Profile, plan: dict[str, int], device, changes: dict, teacher=None, csv=None, **fields):
    """:func:`~kdas_utils.runs.run_ablation` of ``plan`` with the recipe of ``fields`` (e.g.
    ``alpha=0.1``); ``changes`` are the study's TrainConfig overrides (``kdas study --epochs``
    among them, which the recipe takes unless ``fields`` sets it)."""
    from .runs import StudentRecipe, run_ablation

    recipe, rest = StudentRecipe.split(changes, **fields)
    return run_ablation(profile, plan, recipe, teacher=teacher, device=device, csv=csv, **rest)


def alpha_sweep(profile: Profile, plan: StudyPlan = StudyPlan(), device=None, **changes):
    """Seed 0 of every arm of ``plan`` at every alpha: one row per (arm, alpha), scored on the
    validation split and the test sets. Written to ``study-<profile>/alpha.csv``."""
    import pandas as pd

    tables = []
    for alpha in plan.alphas:
        table = _ablation(profile, {arm: 1 for arm in plan.arms}, device, changes, alpha=alpha)
        tables.append(table.assign(alpha=alpha))
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
    import pandas as pd

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
    import pandas as pd

    from .evaluate import mean_dice
    from .models import load_trained
    from .runs import checkpoint_dir, profile_splits, teacher_snapshot

    splits = profile_splits(profile)
    alone = _ablation(profile, {"no-kd": plan.seeds}, device, changes)["validation"].mean()
    rows = []
    for epoch in (*plan.teacher_epochs, None):
        path = teacher_snapshot(profile, epoch) if epoch else checkpoint_dir("teacher", profile) / "best.pt"
        teacher = load_trained(path, device or "cpu")
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
    import pandas as pd

    csv = study_dir(profile) / "labeller.csv"
    seeds = {"no-kd": plan.labeller_seeds, arm: plan.labeller_seeds}
    _ablation(profile, seeds, device, changes, csv=csv, alpha=alpha, label_fraction=plan.label_fraction)
    table = pd.read_csv(csv)  # with the rows of earlier calls (other seeds)
    table = table.assign(label_fraction=plan.label_fraction, alpha=_alpha_column(table, alpha))
    _write(table, profile, "labeller")
    return table


UNSEEN_TABLES = ("unseen", "unseen-arms")


def final_runs(profile: Profile, chosen: dict[str, float], plan: StudyPlan = StudyPlan()) -> list[dict]:
    """The finished runs of the final comparison, as ``{arm, alpha, label_fraction, seed, path}``:
    the student alone and each arm at its ``chosen`` alpha (``plan.seeds`` seeds), the labeller
    step's two arms at ``plan.label_fraction`` (``plan.labeller_seeds``), and the teacher (seed 0).
    Nothing is trained; a run that has not finished all its epochs is left out."""
    from .runs import StudentRecipe, _finished, checkpoint_dir

    wanted = [("no-kd", float("nan"), 1.0, plan.seeds)]
    wanted += [(arm, alpha, 1.0, plan.seeds) for arm, alpha in chosen.items()]
    wanted += [("no-kd", float("nan"), plan.label_fraction, plan.labeller_seeds)]
    wanted += [(arm, alpha, plan.label_fraction, plan.labeller_seeds) for arm, alpha in chosen.items()]
    runs = []
    teacher = checkpoint_dir("teacher", profile)
    if _finished(teacher, profile.teacher_epochs) is not None:
        runs.append({"arm": "teacher", "alpha": float("nan"), "label_fraction": 1.0, "seed": 0})
        runs[-1]["path"] = teacher / "best.pt"
    for arm, alpha, fraction, seeds in wanted:
        for seed in range(seeds):
            recipe = StudentRecipe(arm, label_fraction=fraction, **({} if arm == "no-kd" else {"alpha": alpha}))
            folder = recipe.folder(profile, seed)
            if _finished(folder, profile.epochs) is not None:
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
    import numpy as np
    import pandas as pd

    from .evaluate import average_seeds, domain_table, frame_dice
    from .models import load_network
    from .runs import profile_splits

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
    import pandas as pd

    from .config import project_root

    for root in (study_dir(profile).parent, project_root() / "results"):
        path = root / f"study-{profile.name}" / "alpha.csv"
        if path.exists():
            return choose_alpha(pd.read_csv(path))
    return {}


def _run_label(run: dict) -> str:
    """``"student alone"``, ``"teacher"``, ``"kdas (alpha 0.05)"``, with ``", 25% of masks"`` for a
    label fraction below 1: the model names of ``unseen-arms.csv``."""
    import math

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
    import pandas as pd

    from .runs import StudentRecipe

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
    import pandas as pd

    from .engine import load_checkpoint

    return pd.DataFrame(load_checkpoint(Path(folder) / "last.pt")["history"])


def teacher_curve(profile: Profile):
    """The teacher run's validation curve (epoch, train loss, validation Dice, seconds) from its
    ``last.pt``; written to ``study-<profile>/teacher-curve.csv``."""
    from .runs import checkpoint_dir

    table = run_history(checkpoint_dir("teacher", profile))[["epoch", "train_loss", "val_loss", "val_dice", "seconds"]]
    _write(table, profile, "teacher-curve")
    return table


def load_results(profile_name: str = "standard", root: str | Path | None = None) -> dict:
    """The measured tables of a profile, ``{name: DataFrame}``, as :func:`export` writes them under
    ``root`` (default the project's ``results/``): the study's steps from ``study-<profile>/``
    (``alpha``, ``seeds``, ``teacher-strength``, ``labeller``, ``patient``, ``patient-scores``,
    ``teacher-curve``) and the ablation tables ``ablation-<profile><tag>.csv``, named
    ``ablation<tag>`` (e.g. ``ablation-a0.1-te10``; the default alpha, which file names leave out, is
    put back: ``ablation-standard.csv`` is ``ablation-a0.3``). What notebook 07 shows of the
    measured study."""
    import pandas as pd

    from .config import project_root

    root = Path(root) if root else project_root() / "results"
    tables = {path.stem: pd.read_csv(path) for path in sorted((root / f"study-{profile_name}").glob("*.csv"))}
    for path in sorted(root.glob(f"ablation-{profile_name}*.csv")):
        tag = path.stem.removeprefix(f"ablation-{profile_name}")
        tag = tag if re.match(r"-a\d", tag) else f"-a{ALPHA:g}{tag}"  # the default alpha is not in file names
        tables["ablation" + tag] = pd.read_csv(path)
    return tables


def export(profile: Profile, target: str | Path) -> list[Path]:
    """Copy what is measured to ``target`` (e.g. ``results``), where :func:`load_results` reads it:
    ``runs/study-<profile>/`` to ``target/study-<profile>/`` and the ablation tables with their
    figures, ``runs/ablation-<profile>*.{csv,png}``, to ``target/``, with the study's figures drawn
    first (:func:`figures`). Returns the files written."""
    import shutil

    target = Path(target)
    figures(profile)
    sources = [(path, target / study_dir(profile).name / path.name) for path in sorted(study_dir(profile).glob("*"))]
    sources += [
        (path, target / path.name)
        for pattern in (f"ablation-{profile.name}*.csv", f"ablation-{profile.name}*.png")
        for path in sorted(runs_dir().glob(pattern))
    ]
    for source, destination in sources:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return [destination for _, destination in sources]


def against_alone(table, column: str = "validation"):
    """Each arm of an ablation-style table (rows ``arm``, ``seed``, ``column``) against ``no-kd``:
    seeds, mean, std, the difference of means and the seed spread it is read against (the larger of
    the two arms' standard deviations; one seed has none). Indexed by arm, ``no-kd`` excluded.

    Raises:
        ValueError: the table has no ``no-kd`` rows to compare with.
    """
    import numpy as np

    if not (table.arm == "no-kd").any():
        raise ValueError("the table has no 'no-kd' rows: train the student alone with the same settings first")
    stats = table.groupby("arm", sort=False)[column].agg(["count", "mean", "std"])
    alone = stats.loc["no-kd"]
    rows = stats.drop("no-kd").rename(columns={"count": "seeds"})
    rows["difference"] = rows["mean"] - alone["mean"]
    rows["spread"] = np.fmax(rows["std"], alone["std"])  # fmax: one seed has no std (NaN), no-kd's counts
    return rows


def answer(results: dict, column: str = "validation") -> list[str]:
    """Sentences that state what the measured tables of :func:`load_results` show:

    - one per arm of each comparison table (``seeds``, ``labeller``, ``ablation-*`` tables such
      as a run from a teacher snapshot): above, below or within the seed spread of the student
      alone;
    - one per arm of each ``teacher-strength*`` table: its gain from each teacher, and whether the
      strongest teacher taught best;
    - one per distilled run of ``patient`` (the long schedule's validation curves): its best
      validation Dice against the student alone's on the same schedule.

    The last two are read against the seed spread of the student alone in ``seeds`` (the short
    schedule; their runs have one seed each). Nothing is said of a table that is not there."""
    lines = []
    for name, table in _comparisons(results).items():
        if not (table.arm == "no-kd").any():
            lines.append(f"{name}: no student alone in this table to compare with.")
            continue
        for arm, row in against_alone(table, column).iterrows():
            seeds = f"{int(row.seeds)} seed{'s' if row.seeds > 1 else ''}"
            lines.append(
                f"{name}: {arm} ({seeds}, {column} {row['mean']:.3f}) is {_place(row.difference, row.spread)} "
                f"the student alone ({row.difference:+.3f}; spread {row.spread:.3f})."
            )
    spread = _alone_spread(results, column)
    lines += _strength_lines(results, spread) + _patient_lines(results, spread)
    return lines or ["No comparison with the student alone has been measured on these frames yet."]


def unseen_answer(results: dict) -> list[str]:
    """Sentences that state what :func:`unseen`'s ``unseen-arms`` table (in ``results``, from
    :func:`load_results`) shows: per model, its seen and unseen mean Dice with their 95% intervals and
    the drop between them; for a distilled arm, its gain over the student alone (of the same label
    fraction) on the unseen frames, and whether that interval excludes 0. Says so when no distilled
    arm has been scored there, so the seen-domain answer has nothing to be compared with."""
    import math

    table = results.get("unseen-arms")
    if table is None:
        return ["unseen: not measured yet (kdas study --profile standard --step unseen)."]
    lines = []
    rows = table.set_index(["model", "scope"])
    for model in dict.fromkeys(table.model):
        seen, unseen = rows.loc[(model, "seen")], rows.loc[(model, "unseen")]
        seeds = int(unseen.seeds)
        line = (
            f"unseen: {model} ({seeds} seed{'s' if seeds > 1 else ''}): seen {seen['mean']:.3f} "
            f"[{seen.low:.3f}, {seen.high:.3f}], unseen {unseen['mean']:.3f} [{unseen.low:.3f}, {unseen.high:.3f}] "
            f"({int(unseen.frames)} frames), a drop of {unseen['drop']:.3f}"
        )
        gain = unseen.get("gain", float("nan"))
        if not math.isnan(gain):
            excludes = unseen.gain_low > 0 or unseen.gain_high < 0
            line += (
                f"; on the unseen frames {gain:+.3f} [{unseen.gain_low:+.3f}, {unseen.gain_high:+.3f}] against the "
                f"student alone, {'an interval that excludes 0' if excludes else 'not told apart from no gain'}"
            )
        lines.append(line + ".")
    if not any(m for m in table.model if m not in ("teacher",) and not m.startswith("student alone")):
        lines.append(
            "unseen: no distilled student has been scored on the unseen sets yet, so whether distillation "
            "helps there is not measured."
        )
    return lines


def _place(difference: float, spread: float) -> str:
    """Where ``difference`` lies against ``spread``: above, below or within it. A NaN spread (one
    seed on each side) makes no claim."""
    if spread != spread:
        return "not distinguishable, for lack of a seed spread, from"
    return "above" if difference > spread else "below" if difference < -spread else "within the seed spread of"


def _alone_spread(results: dict, column: str) -> float:
    """The seed-to-seed standard deviation of the student alone in the ``seeds`` table (NaN
    without one, or with fewer than two seeds)."""
    seeds = results.get("seeds")
    if seeds is None or not (seeds.arm == "no-kd").any():
        return float("nan")
    return float(seeds.loc[seeds.arm == "no-kd", column].std())


def _strength_lines(results: dict, spread: float) -> list[str]:
    """:func:`answer`'s sentences for the ``teacher-strength*`` tables (gains on validation)."""
    lines = []
    for name, table in results.items():
        if not name.startswith("teacher-strength"):
            continue
        for arm, rows in table.groupby("arm", sort=False):
            rows = rows.sort_values("teacher_validation")
            best, strongest = rows.loc[rows.gain.idxmax()], rows.iloc[-1]
            gains = ", ".join(
                f"{_teacher(row.teacher_epoch)} (teacher {row.teacher_validation:.3f}) {row.gain:+.3f}"
                for row in rows.itertuples()
            )
            if best.teacher_epoch == strongest.teacher_epoch:
                verdict = "the strongest teacher taught best"
            else:
                margin = best.gain - strongest.gain
                against = (
                    "with no seed spread to read it against"
                    if spread != spread
                    else f"{'more' if margin > spread else 'no more'} than the seed spread"
                )
                verdict = (
                    f"a weaker teacher, {_teacher(best.teacher_epoch)}, taught best: {margin:+.3f} over the "
                    f"strongest, {against}"
                )
            lines.append(
                f"{name}: {arm} (alpha {rows.alpha.iloc[0]:g}, one seed per teacher), gain over the student alone: "
                f"{gains}; {verdict} (spread {spread:.3f})."
            )
    return lines


def _teacher(epoch) -> str:
    return "the final teacher" if str(epoch) == "best" else f"epoch {epoch}"


def _patient_lines(results: dict, spread: float) -> list[str]:
    """:func:`answer`'s sentences for the long schedule (``patient``: validation Dice per epoch)."""
    curves = results.get("patient")
    if curves is None or curves.empty or not (curves.run == "no-kd").any():
        return []
    best = curves.loc[curves.groupby("run", sort=False)["val_dice"].idxmax()].set_index("run")
    alone, lines = best.loc["no-kd"], []
    for run, row in best.drop("no-kd").iterrows():
        epochs = int(curves.loc[curves.run == run, "epoch"].max())
        difference = row.val_dice - alone.val_dice
        lines.append(
            f"patient: {run} after {epochs} epochs (best validation {row.val_dice:.3f}, epoch {int(row.epoch)}) is "
            f"{_place(difference, spread)} the student alone on the same schedule ({alone.val_dice:.3f}, "
            f"epoch {int(alone.epoch)}; {difference:+.3f}; spread {spread:.3f}, measured on the short schedule)."
        )
    return lines


def seed_spread(results: dict, column: str = "validation"):
    """How much one arm's score moves from seed to seed: for each comparison table of
    :func:`load_results` (``seeds``, ``ablation-*``) and each arm with two seeds or more, the seeds
    and the standard deviation of ``column``. Columns ``table, arm, seeds, std``; empty when no
    arm has several seeds."""
    import pandas as pd

    rows = [
        {"table": name, "arm": arm, "seeds": int(stats["count"]), "std": stats["std"]}
        for name, table in _comparisons(results).items()
        for arm, stats in table.groupby("arm", sort=False)[column].agg(["count", "std"]).iterrows()
        if stats["count"] > 1
    ]
    return pd.DataFrame(rows, columns=["table", "arm", "seeds", "std"])


def curves(tables: dict) -> dict:
    """``{label: per-epoch table}`` of the tables of :func:`load_results`: the teacher's curve and
    each patient run's, for :func:`kdas_utils.plots.plot_validation_curves`."""
    found = {"teacher": tables["teacher-curve"]} if "teacher-curve" in tables else {}
    if "patient" in tables:
        found |= {f"student {run}": rows for run, rows in tables["patient"].groupby("run", sort=False)}
    return found


def draw(tables: dict, profile_name: str) -> dict:
    """The study's figures from the tables of :func:`load_results` that exist, ``{name: Figure}``:
    ``curves`` (:func:`curves`), ``alpha``, ``teacher-strength`` (with the student alone as a
    dashed line) and ``unseen`` (seen to unseen, :func:`unseen`'s runs with every mask)."""
    from . import plots

    drawn = {}
    if found := curves(tables):
        drawn["curves"] = plots.plot_validation_curves(
            found, title=f"{profile_name} profile: validation Dice per epoch"
        )
    if "alpha" in tables:
        drawn["alpha"] = plots.plot_alpha_sweep(tables["alpha"])
    if "unseen-arms" in tables:
        arms = tables["unseen-arms"]
        full = arms[arms.label_fraction == 1]
        seeds = full.groupby("model", sort=False)["seeds"].first()
        named = {m: f"{m} ({n} seed{'s' if n > 1 else ''})" if m != "teacher" else m for m, n in seeds.items()}
        drawn["unseen"] = plots.plot_domain_drop(full.assign(model=full.model.map(named)).set_index(["model", "scope"]))
    if "teacher-strength" in tables:
        strength = tables["teacher-strength"]
        alone = (strength.validation - strength.gain).mean()  # gain is measured against the student alone
        drawn["teacher-strength"] = plots.plot_teacher_strength(strength, baseline=alone)
    return drawn


def figures(profile: Profile) -> list[Path]:
    """:func:`draw` for the tables of ``study-<profile>/``, saved there as ``<name>.png``.
    Returns the files written."""
    import matplotlib.pyplot as plt

    from .notebook import save_figure

    drawn = draw(load_results(profile.name, root=study_dir(profile).parent), profile.name)
    written = [save_figure(fig, name, study_dir(profile)) for name, fig in drawn.items()]
    for fig in drawn.values():
        plt.close(fig)
    return written


def _comparisons(results: dict) -> dict:
    """The tables of ``results`` that compare arms with the student alone, seed by seed."""
    return {name: t for name, t in results.items() if name in ("seeds", "labeller") or name.startswith("ablation-")}


def run_study(profile: Profile, plan: StudyPlan = StudyPlan(), device=None, **changes) -> dict:
    """The five steps in order (each resumable); returns their tables and the chosen alphas."""
    sweep = alpha_sweep(profile, plan, device, **changes)
    chosen = choose_alpha(sweep)
    seeds = seeds_table(profile, chosen, plan, device, **changes)
    strength = teacher_strength(profile, chosen, plan, device, **changes)
    best_arm = best_of(seeds, chosen)
    labelled = labeller(profile, best_arm, chosen[best_arm], plan, device, **changes)
    patient_scores = patient(profile, best_arm, chosen[best_arm], plan, device, **changes)
    return {
        "alpha": sweep,
        "chosen": chosen,
        "seeds": seeds,
        "teacher_strength": strength,
        "labeller": labelled,
        "patient": patient_scores,
    }


def best_of(seeds, chosen: dict[str, float]) -> str:
    """The arm of ``chosen`` with the highest mean validation Dice over its seeds in ``seeds``
    (:func:`seeds_table`'s table): the one the patient and labeller steps train."""
    return max(chosen, key=lambda arm: seeds[seeds.arm == arm]["validation"].mean())


def _alpha_column(table, alpha: float) -> list[float]:
    """The ``alpha`` column of a study table: ``alpha`` for each distilled arm, NaN for ``no-kd``."""
    return [float("nan") if arm == "no-kd" else alpha for arm in table.arm]


def _write(table, profile: Profile, name: str) -> Path:
    out = study_dir(profile) / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return out
