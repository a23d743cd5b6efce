"""The study's measured tables: loaded from ``results/`` (or a runs folder), exported there with
their figures, and read against the student alone."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import plots
from ..config import Profile, project_root, runs_dir
from ..kdas import ALPHA
from ..plots import save_figure
from ..runs import checkpoint_dir
from .steps import study_dir, teacher_curve

UNSEEN_TABLES = ("unseen", "unseen-arms")


def load_results(profile_name: str = "standard", root: str | Path | None = None) -> dict:
    """The measured tables of a profile, ``{name: DataFrame}``, as :func:`export` writes them under
    ``root`` (default the project's ``results/``): the study's steps from ``study-<profile>/``
    (``alpha``, ``seeds``, ``teacher-strength``, ``labeller``, ``patient``, ``patient-scores``,
    ``teacher-curve``) and the ablation tables ``ablation-<profile><tag>.csv``, named
    ``ablation<tag>`` (e.g. ``ablation-a0.1-te10``; the default alpha, which file names leave out, is
    put back: ``ablation-standard.csv`` is ``ablation-a0.3``). What notebook 07 shows of the
    measured study."""
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
    figures, ``runs/ablation-<profile>*.{csv,png}``, to ``target/``, with the teacher's curve as it
    stands (:func:`~kdas_utils.study.teacher_curve`, once the teacher has started) and the study's
    figures (:func:`figures`) written first. What ``kdas study --export`` does. Returns the files
    written."""
    target = Path(target)
    if (checkpoint_dir("teacher", profile) / "last.pt").exists():
        teacher_curve(profile)
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


def figures(profile: Profile) -> list[Path]:
    """:func:`kdas_utils.plots.study_figures` for the tables of ``study-<profile>/``, saved there as ``<name>.png``.
    Returns the files written."""
    tables = load_results(profile.name, root=study_dir(profile).parent)
    drawn = plots.study_figures(tables, curves(tables), profile.name)
    written = [save_figure(fig, name, study_dir(profile)) for name, fig in drawn.items()]
    for fig in drawn.values():
        plt.close(fig)
    return written


def curves(tables: dict) -> dict:
    """``{label: per-epoch table}`` of the tables of :func:`load_results`: the teacher's curve and
    each patient run's, for :func:`kdas_utils.plots.plot_validation_curves`."""
    found = {"teacher": tables["teacher-curve"]} if "teacher-curve" in tables else {}
    if "patient" in tables:
        found |= {f"student {run}": rows for run, rows in tables["patient"].groupby("run", sort=False)}
    return found


def against_alone(table, column: str = "validation"):
    """Each arm of an ablation-style table (rows ``arm``, ``seed``, ``column``) against ``no-kd``:
    seeds, mean, std, the difference of means and the seed spread it is read against (the larger of
    the two arms' standard deviations; one seed has none). Indexed by arm, ``no-kd`` excluded.

    Raises:
        ValueError: the table has no ``no-kd`` rows to compare with.
    """
    if not (table.arm == "no-kd").any():
        raise ValueError("the table has no 'no-kd' rows: train the student alone with the same settings first")
    stats = table.groupby("arm", sort=False)[column].agg(["count", "mean", "std"])
    alone = stats.loc["no-kd"]
    rows = stats.drop("no-kd").rename(columns={"count": "seeds"})
    rows["difference"] = rows["mean"] - alone["mean"]
    rows["spread"] = np.fmax(rows["std"], alone["std"])  # fmax: one seed has no std (NaN), no-kd's counts
    return rows


def seed_spread(results: dict, column: str = "validation"):
    """How much one arm's score moves from seed to seed: for each comparison table of
    :func:`load_results` (``seeds``, ``ablation-*``) and each arm with two seeds or more, the seeds
    and the standard deviation of ``column``. Columns ``table, arm, seeds, std``; empty when no
    arm has several seeds."""
    rows = [
        {"table": name, "arm": arm, "seeds": int(stats["count"]), "std": stats["std"]}
        for name, table in comparisons(results).items()
        for arm, stats in table.groupby("arm", sort=False)[column].agg(["count", "std"]).iterrows()
        if stats["count"] > 1
    ]
    return pd.DataFrame(rows, columns=["table", "arm", "seeds", "std"])


def comparisons(results: dict) -> dict:
    """The tables of ``results`` that compare arms with the student alone, seed by seed."""
    return {name: t for name, t in results.items() if name in ("seeds", "labeller") or name.startswith("ablation-")}
