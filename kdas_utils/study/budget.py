"""How many masks is a teacher worth? The label-budget step of the study (``kdas study --step budget``).

The students see the masks of a share of the training frames only (10%, 25%, 50%, and every mask),
drawn from each seed and the same for every arm of a seed (:class:`~kdas_utils.data.PartialLabels`);
the distilled ones see the teacher's maps on every frame. Three arms:

* ``no-kd``: the student alone, which learns from the masks it has;
* ``kdas``: KDAS's attention terms (L_AT + L_SGM) beside L_seg, at the alpha the study chose on the
  validation split (:func:`~kdas_utils.study.recorded_choice`);
* ``pixel``: pixel-wise KD at its own chosen alpha. On frames without a mask it is soft
  pseudo-labelling, the classic semi-supervised recipe: if it does as well as KDAS, KDAS's attention
  terms are not what pays.

Two teachers (the column ``teacher``): ``full``, the profile's teacher, which saw every mask (a teacher
from elsewhere), and ``partial``, a teacher trained on the same masks as the student of its seed
(:func:`~kdas_utils.runs.teacher_dir`): what a reader with that share of the masks and no outside
teacher can do. The design of the step is this series' (neither the paper nor the release has it).

Tables under ``runs/study-<profile>/``, written as each run finishes (a run whose row is there is not
trained or scored again, so the committed tables carry the study across machines):

* ``budget.csv``: one row per run: ``arm``, ``teacher``, ``label_fraction``, ``seed``, ``alpha``,
  ``best_epoch``, ``validation``, the mean Dice at 0.5 of each test set, ``seen`` and ``unseen`` (the
  frames of a domain pooled), ``train_seconds``, ``device``;
* ``budget-frames.csv``: each run's Dice on each test frame (what the intervals are computed from);
* ``budget-arms.csv``: :func:`budget_arms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..config import Profile
from ..engine import cpu_has_native_bf16
from ..evaluate import score_frames
from ..intervals import mean_interval, paired_difference
from ..runs import StudentRecipe, claim_run, profile_splits, sharing, train_student, write_csv
from .steps import recorded_choice, study_dir

KEY = ["arm", "teacher", "label_fraction", "seed"]
ARMS = ("no-kd", "kdas", "pixel")


@dataclass(frozen=True)
class BudgetPlan:
    """The size of the budget step, in the order its runs train.

    Attributes:
        fractions: shares of the masks, with the ``full`` teacher, in order (the quarter first: it
            completes the labeller step's point).
        seeds: seeds of each arm at each of ``fractions``.
        partial_fractions: shares at which the ``partial`` teacher (trained on the same masks) is tried.
        partial_seeds: seeds of ``kdas`` and ``pixel`` with the partial teacher (one teacher per seed).
        full_seeds: seeds of each arm with every mask (the final comparison's runs; trained last).
        arms: the arms to train (a subset of :data:`ARMS`; e.g. ``("no-kd",)``, which needs no teacher:
            the student alone's curve on a machine that cannot keep a teacher).
    """

    fractions: tuple[float, ...] = (0.25, 0.1, 0.5)
    seeds: int = 3
    partial_fractions: tuple[float, ...] = (0.25,)
    partial_seeds: int = 2
    full_seeds: int = 3
    arms: tuple[str, ...] = ARMS

    def __post_init__(self):
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"budget arms {list(self.arms)}: choose one or more of {list(ARMS)}")


def budget_runs(plan: BudgetPlan = BudgetPlan()) -> list[tuple[str, str, float, int]]:
    """``(arm, teacher, label_fraction, seed)`` of every run of ``plan``, in the order they train: each
    fraction's seed 0 of every arm first, then the partial teacher's runs, then every mask."""
    runs = [(arm, "full", f, seed) for f in plan.fractions for seed in range(plan.seeds) for arm in ARMS]
    runs += [
        (arm, "partial", f, seed)
        for f in plan.partial_fractions
        for seed in range(plan.partial_seeds)
        for arm in ARMS[1:]
    ]
    runs += [(arm, "full", 1.0, seed) for seed in range(plan.full_seeds) for arm in ARMS]
    return [run for run in runs if run[0] in plan.arms]


def recipe_of(arm: str, teacher: str, fraction: float, chosen: dict[str, float]) -> StudentRecipe:
    """The :class:`~kdas_utils.runs.StudentRecipe` of a budget run (the same folders as the study's
    other steps where the run is the same: e.g. ``student-kdas-a0.05-l0.25-s0``)."""
    if arm == "no-kd":
        return StudentRecipe("no-kd", label_fraction=fraction)
    return StudentRecipe(
        arm, alpha=chosen[arm], label_fraction=fraction, teacher_fraction=fraction if teacher == "partial" else 1.0
    )


def budget(profile: Profile, plan: BudgetPlan = BudgetPlan(), device=None, chosen=None, **changes):
    """Train (or load) and score every run of ``plan`` (:func:`budget_runs`), writing ``budget.csv`` and
    ``budget-frames.csv`` after each; then ``budget-arms.csv``. Runs with a row already are skipped.
    ``chosen``: ``{arm: alpha}``, default the study's recorded choice. Returns ``(rows, arms)``.

    Raises:
        ValueError: no alpha recorded for ``kdas`` or ``pixel``, or no unseen test set.
    """
    chosen = chosen or recorded_choice(profile)
    missing = [arm for arm in ARMS[1:] if arm in plan.arms and arm not in chosen]
    if missing:
        raise ValueError(
            f"no alpha chosen for {missing} in the {profile.name} study: run its alpha step first "
            f"(kdas study --profile {profile.name} --step alpha)"
        )
    splits = profile_splits(profile)
    if "unseen" not in splits.domains.values():
        raise ValueError(
            f"the {profile.name} profile's test sets {list(splits.test)} hold no unseen set: name a root of "
            f"unseen sets with $KDAS_TEST_ROOTS or --test-root (e.g. ../shared/data/unseen256)"
        )
    folder = study_dir(profile)
    rows_csv, frames_csv = folder / "budget.csv", folder / "budget-frames.csv"
    rows = pd.read_csv(rows_csv) if rows_csv.exists() else pd.DataFrame(columns=KEY)
    frames = pd.read_csv(frames_csv) if frames_csv.exists() else pd.DataFrame(columns=[*KEY, "set", "frame", "dice"])
    done = set(map(_key, rows[KEY].itertuples(index=False)))
    todo = [run for run in budget_runs(plan) if _key(run) not in done]
    if sharing():  # side by side (kdas study --jobs): first every run nobody holds
        for arm, teacher, fraction, seed in todo:
            claim_run(profile, recipe_of(arm, teacher, fraction, chosen), seed, device=device, **changes)
    for arm, teacher, fraction, seed in todo:
        recipe = recipe_of(arm, teacher, fraction, chosen)
        run = train_student(profile, recipe, seed, device=device, **changes)
        row, per_set = score_frames(run, splits, profile.image_size, device)
        pooled = {
            which: np.concatenate([per_set[name] for name in splits.of_domain(which)]) for which in ("seen", "unseen")
        }
        key = dict(zip(KEY, (arm, teacher, fraction, seed)))
        alpha = float("nan") if arm == "no-kd" else chosen[arm]
        row = key | {"alpha": alpha} | row | {w: float(v.mean()) for w, v in pooled.items()}
        row["device"] = _device_name(device)
        rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True)
        names = {name: [image.stem for image, _ in pairs] for name, pairs in splits.test.items()}
        new = [
            key | {"set": name, "frame": f, "dice": d} for name in per_set for f, d in zip(names[name], per_set[name])
        ]
        frames = pd.concat([frames, pd.DataFrame(new)], ignore_index=True)
        write_csv(frames, frames_csv)  # the frames first: a row is only there once its frames are
        write_csv(rows, rows_csv)
    arms = budget_arms(rows, frames, splits.domains)
    write_csv(arms, folder / "budget-arms.csv")
    return rows, arms


def _key(run) -> tuple:
    arm, teacher, fraction, seed = run
    return arm, teacher, round(float(fraction), 6), int(seed)


def _device_name(device) -> str:
    """What trained the run: ``cuda``, ``cpu-bf16`` (a CPU with native bf16, which trains under bf16
    autocast) or ``cpu-fp32``; arms are compared within one device only."""
    if device not in (None, "cpu") or (device is None and torch.cuda.is_available()):
        return str(device or "cuda")
    return "cpu-bf16" if cpu_has_native_bf16() else "cpu-fp32"


def budget_arms(rows, frames, domains: dict[str, str] | None = None):
    """Per arm, teacher and share of the masks (one row each): the number of seeds; the mean
    validation Dice and its spread over seeds (``validation_std``); for ``seen`` and ``unseen``, the mean
    Dice of the frames (each frame's Dice averaged over the seeds) with its 95% percentile-bootstrap
    interval over frames (``seen_low``, ``seen_high``), the spread of the seeds' means
    (``seen_seed_std``), and the gain over the student alone of the same share and the same seeds on
    the same frames with its paired interval (``seen_gain``, ``seen_gain_low``, ``seen_gain_high``).
    ``domains``: ``{test set: "seen" | "unseen"}``; default: Kvasir and CVC-ClinicDB seen, the others
    unseen."""
    frames = frames.assign(label_fraction=frames.label_fraction.astype(float).round(6))
    rows = rows.assign(label_fraction=rows.label_fraction.astype(float).round(6))
    domains = domains or {}

    def domain_of(name: str) -> str:
        return domains.get(name, "seen" if name in ("Kvasir", "CVC-ClinicDB") else "unseen")

    frames = frames.assign(domain=frames["set"].map(domain_of))
    out = []
    for (arm, teacher, fraction), group in rows.groupby(["arm", "teacher", "label_fraction"], sort=False):
        seeds = sorted(group.seed.astype(int))
        record = {"arm": arm, "teacher": teacher, "label_fraction": fraction, "seeds": len(seeds)}
        record["alpha"] = group.alpha.iloc[0]
        if "device" in group:  # what trained the seeds (compare arms within one device)
            record["device"] = "+".join(sorted(set(group.device.dropna().astype(str))))
        record["validation"] = group.validation.mean()
        record["validation_std"] = group.validation.std() if len(seeds) > 1 else float("nan")
        mine = _seed_frames(frames, arm, teacher, fraction, seeds)
        alone = _seed_frames(frames, "no-kd", "full", fraction, seeds) if arm != "no-kd" else None
        for which in ("seen", "unseen"):
            values = mine[mine.domain == which]
            interval = mean_interval(values.dice.to_numpy())
            record |= {which: interval.mean, f"{which}_low": interval.low, f"{which}_high": interval.high}
            record[f"{which}_seed_std"] = group[which].std() if len(seeds) > 1 else float("nan")
            if alone is not None and len(alone):
                base = alone[alone.domain == which]
                paired = values.merge(base, on=["set", "frame"], suffixes=("", "_alone"))
                gain = paired_difference(paired.dice.to_numpy(), paired.dice_alone.to_numpy())
                record |= {f"{which}_gain": gain.mean, f"{which}_gain_low": gain.low, f"{which}_gain_high": gain.high}
        out.append(record)
    return pd.DataFrame(out)


def _seed_frames(frames, arm: str, teacher: str, fraction: float, seeds: list[int]):
    """Each test frame's Dice averaged over ``seeds`` of one arm (``set``, ``frame``, ``domain``, ``dice``);
    empty when a seed is missing (the gain is then left out rather than taken over other seeds)."""
    mine = frames[
        (frames.arm == arm)
        & (frames.teacher == teacher)
        & (frames.label_fraction == round(fraction, 6))
        & frames.seed.astype(int).isin(seeds)
    ]
    if mine.seed.nunique() < len(seeds):
        return mine.iloc[0:0][["set", "frame", "domain", "dice"]]
    return mine.groupby(["set", "frame", "domain"], sort=False, as_index=False)["dice"].mean()


def exchange_rate(arms, arm: str = "kdas", fraction: float = 0.25, scope: str = "seen") -> float:
    """The share of the masks at which the student alone reaches what ``arm`` (full teacher) reaches at
    ``fraction``: interpolated linearly in log(share) between the student alone's measured shares;
    ``inf`` if it stays below at every share measured, ``nan`` if the point is missing. E.g. 0.6: KDAS at
    a quarter of the masks is worth the student alone at 60% of them."""
    alone = arms[(arms.arm == "no-kd") & (arms.teacher == "full")].sort_values("label_fraction")
    target = arms[(arms.arm == arm) & (arms.teacher == "full") & (arms.label_fraction == fraction)]
    if target.empty or alone.empty:
        return float("nan")
    value = float(target[scope].iloc[0])
    x, y = np.log(alone.label_fraction.to_numpy(float)), alone[scope].to_numpy(float)
    for i in range(len(x)):
        if y[i] >= value:
            if i == 0:
                return float(alone.label_fraction.iloc[0])
            t = (value - y[i - 1]) / (y[i] - y[i - 1])
            return float(math.exp(x[i - 1] + t * (x[i] - x[i - 1])))
    return float("inf")


ARM_LABELS = {"no-kd": "student alone", "kdas": "KDAS", "pixel": "pixel-wise KD"}
ARM_COLOURS = {"no-kd": "#7f7f7f", "kdas": "#1f77b4", "pixel": "#ff7f0e"}


def plot_budget(arms):
    """Dice against the share of the masks (log axis), seen and unseen test frames side by side: one line
    per arm with the full teacher, its band the 95% interval over frames; the partial teacher's points as open
    markers; the exchange rate (:func:`exchange_rate`) marked on the seen panel."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for ax, scope in zip(axes, ("seen", "unseen")):
        for arm in ARMS:
            rows = arms[(arms.arm == arm) & (arms.teacher == "full")].sort_values("label_fraction")
            if rows.empty:
                continue
            alpha = "" if arm == "no-kd" else f" (alpha {rows.alpha.iloc[0]:g})"
            ax.plot(rows.label_fraction, rows[scope], "o-", color=ARM_COLOURS[arm], label=ARM_LABELS[arm] + alpha)
            ax.fill_between(
                rows.label_fraction, rows[f"{scope}_low"], rows[f"{scope}_high"], color=ARM_COLOURS[arm], alpha=0.15
            )
            partial = arms[(arms.arm == arm) & (arms.teacher == "partial")]
            if len(partial):
                ax.plot(
                    partial.label_fraction,
                    partial[scope],
                    "o",
                    mfc="none",
                    ms=9,
                    color=ARM_COLOURS[arm],
                    label=f"{ARM_LABELS[arm]}, teacher on the same masks",
                )
        ax.set_xscale("log")
        fractions = sorted(set(arms.label_fraction))
        ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
        ax.minorticks_off()
        ax.set(xlabel="share of the training frames with a mask", ylabel=f"mean Dice at 0.5, {scope} test frames")
        ax.set_title(f"{scope} hospitals" if scope == "unseen" else "seen hospitals (Kvasir, CVC-ClinicDB)")
        ax.grid(alpha=0.3)
    rate = exchange_rate(arms)
    if math.isfinite(rate):
        axes[0].axvline(rate, color=ARM_COLOURS["kdas"], ls=":", lw=1)
        axes[0].annotate(
            f"KDAS at 25% = alone at {rate:.0%}",
            (rate, axes[0].get_ylim()[0]),
            fontsize=7,
            rotation=90,
            va="bottom",
            ha="right",
            color=ARM_COLOURS["kdas"],
        )
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("How many masks is a teacher worth? (bands: 95% interval over frames, seeds averaged)", fontsize=10)
    fig.tight_layout()
    return fig


def _seeds(count) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{int(count)} seed{'s' if count > 1 else ''}"


def _on(row) -> str:
    """``", on cpu-bf16"``: the device of a ``budget-arms.csv`` row, where recorded."""
    device = row.get("device", "")
    return f", on {device}" if isinstance(device, str) and device else ""


def _across(row, alone) -> str:
    """``"; the student alone on cpu-fp32: across devices"`` where a distilled arm's gain pairs runs that two
    kinds of device trained (bf16 autocast against fp32 moves a run's Dice a little), else ``""``."""
    mine, theirs = (r.get("device", "") if r is not None else "" for r in (row, alone))
    if isinstance(mine, str) and isinstance(theirs, str) and mine and theirs and mine != theirs:
        return f"; the student alone on {theirs}: across devices"
    return ""


def budget_answer(arms) -> list[str]:
    """What the budget table shows, in sentences: per share of the masks, each distilled arm's gain over the
    student alone on the seen and unseen frames with its paired 95% interval; whether KDAS's attention terms
    beat pixel-wise KD (soft pseudo-labels) there; the exchange rate; the teacher trained on the same masks.
    Says what is not measured yet."""
    if arms is None or len(arms) == 0:
        return ["budget: not measured yet (kdas study --profile standard --step budget)."]
    lines = []
    full = arms[arms.teacher == "full"]
    for fraction in sorted(set(full.label_fraction)):
        here = full[full.label_fraction == fraction].set_index("arm")
        if "no-kd" in here.index:
            r = here.loc["no-kd"]
            lines.append(
                f"The student alone with {fraction:.0%} of the masks: {r.seen:.3f} "
                f"[{r.seen_low:.3f}, {r.seen_high:.3f}] seen, {r.unseen:.3f} "
                f"[{r.unseen_low:.3f}, {r.unseen_high:.3f}] unseen ({int(r.seeds)} seeds{_on(r)})."
            )
        parts, alone = [], here.loc["no-kd"] if "no-kd" in here.index else None
        for arm in ("kdas", "pixel"):
            if arm in here.index and not math.isnan(here.loc[arm].get("seen_gain", float("nan"))):
                r = here.loc[arm]
                parts.append(
                    f"{ARM_LABELS[arm]} {r.seen_gain:+.3f} [{r.seen_gain_low:+.3f}, {r.seen_gain_high:+.3f}] seen, "
                    f"{r.unseen_gain:+.3f} [{r.unseen_gain_low:+.3f}, {r.unseen_gain_high:+.3f}] unseen "
                    f"({_seeds(r.seeds)}{_on(r)}{_across(r, alone)})"
                )
        if parts:
            lines.append(f"With {fraction:.0%} of the masks, over the student alone: " + "; ".join(parts) + ".")
        if {"kdas", "pixel"} <= set(here.index):
            k, p = here.loc["kdas"], here.loc["pixel"]
            better = "KDAS's attention terms ahead of" if k.seen > p.seen else "pixel-wise KD as good as or ahead of"
            lines.append(
                f"  at {fraction:.0%}: {better} pixel-wise KD on the seen frames ({k.seen:.3f} against {p.seen:.3f})."
            )
    rate = exchange_rate(full)
    used = full[(full.arm == "no-kd") | ((full.arm == "kdas") & (full.label_fraction == 0.25))]
    devices = sorted({d for d in used.get("device", pd.Series(dtype=str)) if isinstance(d, str) and d})
    mixed = f" (from runs on {' and '.join(devices)}: across devices)" if len(devices) > 1 else ""
    if math.isfinite(rate):
        lines.append(
            f"Exchange rate: KDAS with 25% of the masks scores what the student alone scores with {rate:.0%} of "
            f"them{mixed}."
        )
    elif rate == float("inf"):
        lines.append(
            "Exchange rate: KDAS with 25% of the masks scores more than the student alone with any share measured."
        )
    partial = arms[arms.teacher == "partial"]
    for _, r in partial.iterrows():
        if math.isnan(r.get("seen_gain", float("nan"))):
            continue
        here = full[full.label_fraction == r.label_fraction].set_index("arm")
        alone = here.loc["no-kd"] if "no-kd" in here.index else None
        beside = ""
        if r.arm in here.index and not math.isnan(here.loc[r.arm].get("seen_gain", float("nan"))):
            f = here.loc[r.arm]
            beside = (
                f"; from the teacher that saw every mask {f.seen_gain:+.3f} seen, {f.unseen_gain:+.3f} unseen "
                f"({_seeds(f.seeds)})"
            )
        lines.append(
            f"A teacher trained on the same {r.label_fraction:.0%} of the masks: {ARM_LABELS[r.arm]} "
            f"{r.seen_gain:+.3f} [{r.seen_gain_low:+.3f}, {r.seen_gain_high:+.3f}] seen, {r.unseen_gain:+.3f} "
            f"[{r.unseen_gain_low:+.3f}, {r.unseen_gain_high:+.3f}] unseen over the student alone of the same "
            f"seeds ({_seeds(r.seeds)}{_on(r)}{_across(r, alone)}){beside}."
        )
    for arm in ARMS:
        have = set(full[full.arm == arm].label_fraction)
        missing = [f"{f:.0%}" for f in BudgetPlan().fractions if f not in have]
        if missing:
            lines.append(f"Not measured yet: {ARM_LABELS[arm]} with {', '.join(missing)} of the masks.")
    if partial.empty:
        lines.append("Not measured yet: the teacher trained on the same masks.")
    return lines
