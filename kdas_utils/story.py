"""The learner's own run of the series' finding: what a teacher is worth with every mask and with a quarter.

The real-frame study (notebook 07, ``docs/results.md``) found that distillation adds about a hundredth
when the student sees every mask, and pays clearly when it sees a quarter of them (the teacher's maps
are then all it learns from on the other frames). :func:`quick_story` trains the runs that show it, for
seeds fixed before looking (:data:`SEEDS`): per seed, the student alone and the KDAS student, with every
mask and with :data:`FRACTION` of them. The masks kept are drawn from the seed, the same for both students
of a seed (:class:`~kdas_utils.data.PartialLabels`). Each is scored on the profile's seen test set (mean
Dice at 0.5; the test set only reports, it chooses nothing), and the numbers go to ``runs/quick_story.json``
for notebooks 05 to 07 (and for whoever checks the series).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .config import Profile, runs_dir
from .evaluate import mean_dice
from .files import write_text
from .runs import StudentRecipe, profile_splits
from .side_by_side import train_side_by_side

SEEDS = (0, 1)
FRACTION = 0.25
STORY_FILE = "quick_story.json"


def story_plan(alpha: float, seeds=SEEDS, fraction: float = FRACTION) -> dict[str, list[tuple[StudentRecipe, int]]]:
    """``{condition: [(recipe, seed), ...]}`` for ``alone``, ``kdas`` (every mask), ``alone_l25`` and
    ``kdas_l25`` (``fraction`` of the masks; the key keeps the 25 whatever the fraction)."""
    alone, kdas = StudentRecipe("no-kd"), StudentRecipe("kdas", alpha=alpha)
    recipes = {
        "alone": alone,
        "kdas": kdas,
        "alone_l25": alone.but(label_fraction=fraction),
        "kdas_l25": kdas.but(label_fraction=fraction),
    }
    return {name: [(recipe, seed) for seed in seeds] for name, recipe in recipes.items()}


def quick_story(
    profile: Profile, alpha: float, teacher, seeds=SEEDS, fraction: float = FRACTION, device=None, jobs=None
) -> dict:
    """Train (or load) the runs of :func:`story_plan` side by side
    (:func:`~kdas_utils.side_by_side.train_side_by_side`), score them and ``teacher`` on the first seen test
    set, write ``runs/quick_story.json`` and return it:
    ``{"seeds", "alpha", "label_fraction", "test_set", "alone_test", "kdas_test", "alone_l25_test",
    "kdas_l25_test", "teacher_test", "best_epoch": {run name: epoch}, "validation": {run name: Dice}}``
    (``*_test``: one mean Dice per seed, in the order of ``seeds``)."""
    splits = profile_splits(profile)
    test_set = splits.of_domain("seen")[0]
    plan = story_plan(alpha, seeds, fraction)
    flat = [item for items in plan.values() for item in items]
    trained = dict(zip(flat, train_side_by_side(profile, flat, jobs=jobs, device=device)))
    story = {"seeds": list(seeds), "alpha": alpha, "label_fraction": fraction, "test_set": test_set}
    story["best_epoch"], story["validation"] = {}, {}
    for name, items in plan.items():
        story[f"{name}_test"] = []
        for item in items:
            run = trained[item]
            label = run.path.parent.name.removesuffix(f"-{profile.name}")
            best = max(run.history, key=lambda h: h["val_dice"])
            story["best_epoch"][label], story["validation"][label] = int(best["epoch"]), float(best["val_dice"])
            story[f"{name}_test"].append(mean_dice(run.model, splits.test[test_set], profile.image_size, device))
    story["teacher_test"] = mean_dice(teacher, splits.test[test_set], profile.image_size, device)
    write_story(story)
    return story


def write_story(story: dict, path: Path | None = None) -> Path:
    """``runs/quick_story.json``, written whole or not at all."""
    return write_text(Path(path) if path else runs_dir() / STORY_FILE, json.dumps(story, indent=2))


def read_story(path: Path | None = None) -> dict | None:
    """The story of :func:`quick_story` (``None`` before notebook 05 has run)."""
    path = Path(path) if path else runs_dir() / STORY_FILE
    return json.loads(path.read_text()) if path.exists() else None


def gains(story: dict) -> dict[str, list[float]]:
    """``{"every mask": [...], "a quarter": [...]}``: the KDAS student minus the student alone, per seed."""
    every = [k - a for k, a in zip(story["kdas_test"], story["alone_test"])]
    few = [k - a for k, a in zip(story["kdas_l25_test"], story["alone_l25_test"])]
    return {"every mask": every, f"{story['label_fraction']:.0%} of the masks": few}


def table(story: dict):
    """The story as a table: one row per condition and seed, the student alone's and the KDAS student's test
    Dice and their difference."""
    rows = []
    for condition, alone, kdas in (
        ("every mask", "alone_test", "kdas_test"),
        (f"{story['label_fraction']:.0%} of the masks", "alone_l25_test", "kdas_l25_test"),
    ):
        for seed, a, k in zip(story["seeds"], story[alone], story[kdas]):
            rows.append({"masks": condition, "seed": seed, "student alone": a, "KDAS student": k, "gain": k - a})
    return pd.DataFrame(rows)


def plot_story(story: dict):
    """Test Dice of the student alone and the KDAS student, per seed, with every mask and with a quarter; the
    teacher's as a line."""
    rows = table(story)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    labels = [f"{r.masks}\nseed {r.seed}" for r in rows.itertuples()]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, rows["student alone"], 0.4, label="student alone", color="#999999")
    ax.bar(x + 0.2, rows["KDAS student"], 0.4, label=f"KDAS student (alpha {story['alpha']:g})", color="#1f77b4")
    for xi, (kdas, gain) in zip(x, zip(rows["KDAS student"], rows["gain"])):
        ax.annotate(f"{gain:+.3f}", (xi + 0.2, kdas), ha="center", va="bottom", fontsize=8)
    ax.axhline(story["teacher_test"], color="#d62728", ls="--", lw=1, label=f"teacher {story['teacher_test']:.3f}")
    ax.set_ylim(0, 1.3 * max(story["teacher_test"], rows[["student alone", "KDAS student"]].to_numpy().max()))
    ax.set_xticks(x, labels)
    ax.set_ylabel(f"mean Dice at 0.5, {story['test_set']} test set")
    ax.set_title("Your run: what the teacher adds, with every mask and with a quarter")
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    fig.tight_layout()
    return fig
