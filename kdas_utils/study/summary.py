"""The study in one table, one figure and a conclusion: each condition's gain over the student alone.

:func:`gains` reads the committed tables (:func:`~kdas_utils.study.load_results`) and gives one row per
condition and distilled arm: the gain in Dice over the student alone under the same condition, and how
sure it is (the seeds' spread, or a 95% interval over frames on the unseen sets). :func:`conclusion`
states the same in sentences. Every number comes from the tables, so neither can drift from them.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

COLUMNS = ["condition", "arm", "measure", "gain", "low", "high", "spread_kind", "seeds", "alone", "arm_score"]


def gains(results: dict) -> pd.DataFrame:
    """One row per condition and distilled arm (:data:`COLUMNS`): ``gain`` = the arm's mean minus the
    student alone's under the same condition; ``low`` and ``high`` the band drawn around it:
    ``gain -+ spread`` where ``spread`` is the larger of the two arms' seed standard deviations (the seed
    spread; one seed on each side: the student alone's spread in the 10-epoch comparison), or the 95%
    bootstrap interval of the paired gain over frames (the unseen sets). ``measure`` says which Dice.

    Conditions, where their table is there: every mask at 10 epochs (``seeds``), every mask at 40 epochs
    (``patient``: best validation Dice of one run each), a quarter of the masks (``labeller``), weaker
    teachers (``teacher-strength``, by the teacher's epoch), and the unseen sets (``unseen-arms``) with
    every mask and with a quarter."""
    rows = []
    alone_spread = _spread(results.get("seeds"), "no-kd")
    if "seeds" in results:
        rows += _seed_rows(results["seeds"], "every mask, 10 epochs")
    if "patient" in results:
        best = results["patient"].groupby("run", sort=False)["val_dice"].max()
        alone = best.get("no-kd")
        for run, score in best.items():
            if run != "no-kd" and alone is not None:
                arm = run.split(" ")[0]
                rows.append(
                    _row("every mask, 40 epochs", arm, "validation", score - alone, alone_spread, 1, alone, score)
                )
    if "labeller" in results:
        rows += _seed_rows(results["labeller"], "a quarter of the masks")
    if "teacher-strength" in results:
        table = results["teacher-strength"]
        for row in table[table.teacher_epoch.astype(str) != "best"].itertuples():
            teacher = f"teacher of epoch {row.teacher_epoch} (validation {row.teacher_validation:.2f})"
            alone = row.validation - row.gain
            rows.append(_row(teacher, row.arm, "validation", row.gain, alone_spread, 1, alone, row.validation))
    if "unseen-arms" in results:
        table = results["unseen-arms"]
        unseen = table[(table.scope == "unseen") & table.gain.notna() & (table.model != "teacher")]
        for row in unseen.itertuples():
            fraction = "a quarter of the masks" if row.label_fraction < 1 else "every mask"
            arm = row.model.split(" ")[0]
            rows.append(
                {
                    "condition": f"unseen hospitals, {fraction}",
                    "arm": arm,
                    "measure": f"test Dice on {int(row.frames)} unseen frames",
                    "gain": row.gain,
                    "low": row.gain_low,
                    "high": row.gain_high,
                    "spread_kind": "95% interval over frames",
                    "seeds": int(row.seeds),
                    "alone": row.mean - row.gain,
                    "arm_score": row.mean,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _seed_rows(table, condition: str) -> list[dict]:
    alone = table[table.arm == "no-kd"]["validation"]
    rows = []
    for arm, scores in table[table.arm != "no-kd"].groupby("arm", sort=False)["validation"]:
        spread = float(np.fmax(_std(scores), _std(alone)))
        rows.append(
            _row(
                condition,
                arm,
                "validation",
                scores.mean() - alone.mean(),
                spread,
                len(scores),
                alone.mean(),
                scores.mean(),
            )
        )
    return rows


def _row(condition, arm, measure, gain, spread, seeds, alone, score) -> dict:
    return {
        "condition": condition,
        "arm": arm,
        "measure": f"{measure} Dice",
        "gain": float(gain),
        "low": float(gain - spread) if not math.isnan(spread) else float("nan"),
        "high": float(gain + spread) if not math.isnan(spread) else float("nan"),
        "spread_kind": "seed spread",
        "seeds": int(seeds),
        "alone": float(alone),
        "arm_score": float(score),
    }


def _std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _spread(table, arm: str) -> float:
    if table is None:
        return float("nan")
    return _std(table[table.arm == arm]["validation"])


def conclusion(results: dict, arm: str = "kdas") -> list[str]:
    """What the study found, in sentences built from :func:`gains` (``arm`` against the student alone):
    with every mask after 10 and 40 epochs, with a quarter of the masks, from weaker teachers, and on
    unseen hospitals. A condition whose table is missing is left out."""
    table = gains(results)
    mine = table[table.arm == arm]
    lines = []

    def get(condition):
        found = mine[mine.condition == condition]
        return None if found.empty else found.iloc[0]

    ten, forty, quarter = get("every mask, 10 epochs"), get("every mask, 40 epochs"), get("a quarter of the masks")
    if ten is not None:
        spread = ten.high - ten.gain
        lines.append(
            f"With every mask, {arm} adds {ten.gain:+.3f} validation Dice after 10 epochs ({ten.seeds} seeds: "
            f"{ten.arm_score:.3f} against {ten.alone:.3f}), {_against(ten.gain, spread)} of {spread:.3f}."
        )
    if forty is not None:
        lines.append(
            f"Trained 40 epochs, both level off: {arm} reaches {forty.arm_score:.3f} and the student alone "
            f"{forty.alone:.3f} ({forty.gain:+.3f}, one run each)."
        )
    if quarter is not None:
        spread = quarter.high - quarter.gain
        lines.append(
            f"With a quarter of the masks, where the teacher's maps are all the student has on the other frames, "
            f"{arm} gains {quarter.gain:+.3f} ({quarter.seeds} seeds: {quarter.arm_score:.3f} against "
            f"{quarter.alone:.3f}), {_against(quarter.gain, spread)} of {spread:.3f}."
        )
    weaker = mine[mine.condition.str.startswith("teacher of epoch")]
    if len(weaker):
        parts = ", ".join(f"{r.condition.removeprefix('teacher of ')} {r.gain:+.3f}" for r in weaker.itertuples())
        lines.append(f"From weaker teachers (one run each), {arm}'s gain was: {parts}.")
    for row in mine[mine.condition.str.startswith("unseen")].itertuples():
        sure = "an interval that excludes 0" if row.low > 0 or row.high < 0 else "an interval that holds 0"
        lines.append(f"On {row.condition} ({row.measure}): {row.gain:+.3f} [{row.low:+.3f}, {row.high:+.3f}], {sure}.")
    return lines


def _against(gain: float, spread: float) -> str:
    if math.isnan(spread):
        return "with no seed spread to read it against"
    return "beyond the seed spread" if abs(gain) > spread else "within the seed spread"


ARM_STYLE = {"kdas": ("KDAS", "#1f77b4", "o"), "pixel": ("pixel-wise KD", "#ff7f0e", "s")}


def plot_gains(table: pd.DataFrame, alphas: dict[str, float] | None = None):
    """:func:`gains` as one figure: a row per condition, each arm's gain over the student alone (dot) with
    its band (bar: the seed spread, or the 95% interval on the unseen sets), and the line of no gain.
    ``alphas``: ``{arm: alpha}`` for the legend."""
    conditions = list(dict.fromkeys(table.condition))
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(conditions) + 1.6))
    arms = list(dict.fromkeys(table.arm))
    offsets = {arm: (i - (len(arms) - 1) / 2) * 0.22 for i, arm in enumerate(arms)}
    for arm in arms:
        rows = table[table.arm == arm]
        label, colour, marker = ARM_STYLE.get(arm, (arm, None, "o"))
        if alphas and arm in alphas:
            label += f" (alpha {alphas[arm]:g})"
        y = [conditions.index(c) + offsets[arm] for c in rows.condition]
        err = np.vstack([rows.gain - rows.low, rows.high - rows.gain])
        ax.errorbar(rows.gain, y, xerr=np.nan_to_num(err), fmt=marker, color=colour, capsize=3, label=label)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(conditions)), [_wrap(c) for c in conditions])
    ax.invert_yaxis()
    ax.set_xlabel("Dice gain over the student alone (validation; test on the unseen rows)")
    ax.set_title("Gain over the student alone, by condition\n(bars: seed spread; unseen rows: 95% interval)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 40) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
