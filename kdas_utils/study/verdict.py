"""The study's answer in sentences: what the measured tables show, and nothing they do not."""

from __future__ import annotations

import math

from .results import against_alone, comparisons


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
    for name, table in comparisons(results).items():
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
