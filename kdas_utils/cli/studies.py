"""``kdas study``: when distillation helps (notebook 07), here or in several processes at once."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import torch

from .. import study
from ..arguments import (
    fraction,
    positive_int,
)
from ..config import (
    get_profile,
)
from ..errors import KDASError
from ..runs import (
    share_runs,
)
from ..study import STEPS
from ..study.budget import ARMS, BudgetPlan
from .common import (
    config_changes,
    profile_argument,
    test_root_argument,
    training_arguments,
    use_test_roots,
)


def _study(args) -> int:
    """The study of notebook 07 (:func:`kdas_utils.study.run_study`); every step loads what is finished."""
    profile = get_profile(args.profile)
    use_test_roots(args)
    plan = study.StudyPlan(seeds=args.seeds, alpha_fraction=args.alpha_fraction)
    if args.export_only:  # the unseen step if it can run, then the export; nothing is trained
        _print_study(study.run_study(profile, plan, args.device, steps=("unseen",)))
        return _export_study(study, profile, args.export or "results")
    steps = args.step or study.STEPS
    if args.shared_job:  # one of --jobs' further processes: the training steps (the unseen step only scores)
        steps = [step for step in steps if step != "unseen"]
        if not steps:
            return 0
        with share_runs():
            _print_study(
                study.run_study(
                    profile, plan, args.device, steps=steps, budget_plan=_budget_plan(args), **config_changes(args)
                )
            )
        return 0
    if args.jobs > 1:
        with side_by_side(args, study.study_dir(profile)), share_runs():
            return _study_here(args, profile, plan, steps)
    return _study_here(args, profile, plan, steps)


def _study_here(args, profile, plan, steps) -> int:
    # --step unseen or budget asks for that step: if it cannot run, that is the command's error
    strict = bool(study.RECORDED_ALPHA_STEPS & set(args.step or []))
    tables = study.run_study(
        profile, plan, args.device, steps=steps, strict=strict, budget_plan=_budget_plan(args), **config_changes(args)
    )
    _print_study(tables)
    return _export_study(study, profile, args.export) if args.export else 0


def _budget_plan(args):
    """The budget step's plan: every arm, or those of ``--budget-arm``."""
    return BudgetPlan(arms=tuple(args.budget_arm or ARMS))


@contextlib.contextmanager
def side_by_side(args, folder: Path):
    """``kdas study --jobs N``: start N - 1 more processes of this same command (``--shared-job``;
    each prints to ``<folder>/job-<n>.log``), give each process, this one too, its share of the CPU
    threads, run the block, then wait for the others. They share the runs
    (:func:`kdas_utils.runs.share_runs`): each run is trained once. If the block fails, the others are
    stopped (their runs resume next time)."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "kdas_utils.cli", *args.argv, "--shared-job"]
    others = []
    for job in range(2, args.jobs + 1):
        log = folder / f"job-{job}.log"
        with open(log, "w") as out:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        others.append((job, log, process))
        print(f"study job {job} of {args.jobs}: pid {process.pid}, {threads} thread(s), output in {log}", flush=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    print(f"study job 1 of {args.jobs}: this process, {threads} thread(s)", flush=True)
    try:
        yield
    except BaseException:
        for _, _, process in others:
            process.terminate()
        raise
    finally:
        ended = [(job, log, process.wait()) for job, log, process in others]
        torch.set_num_threads(before)
    failed = [f"job {job} ended with exit status {code} (see {log})" for job, log, code in ended if code]
    if failed:
        raise KDASError("; ".join(failed))


def add_study(sub) -> None:
    """The ``kdas study`` parser, beside its handler :func:`_study`."""
    p = sub.add_parser(
        "study",
        help="when does distillation help? alpha, seeds, teacher strength, labeller, patience, unseen sets, "
        "label budget (notebook 07)",
        description="Run the study of notebook 07 for a profile: alpha chosen on the validation split for the "
        "kdas and pixel arms, seeds of no-kd and each arm at its alpha, distillation from teacher snapshots, "
        "the teacher as a labeller for students that see a quarter of the masks, and a long schedule; "
        "with --step unseen, the final comparison on unseen sets; with --step budget, the label-budget curve "
        "(no-kd, kdas and pixel at 10%, 25%, 50% and every mask, from the full teacher and from one trained "
        "on the same masks). Finished runs are loaded; stop and start again at any time.",
    )
    profile_argument(p)
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds of each arm at its alpha (default 3)")
    p.add_argument(
        "--alpha-fraction",
        type=fraction,
        default=1.0,
        metavar="F",
        help="the alpha step chooses with the students seeing this share of the masks (default 1: every mask; "
        "the quick profile's recorded choice was made at 0.25)",
    )
    p.add_argument(
        "--step",
        action="append",
        choices=STEPS,
        help="run only these steps (repeatable; alpha runs first, it is what the others use, except for "
        "unseen, which scores the finished runs at the alphas the alpha step recorded and trains nothing, and "
        "budget, the label-budget curve, which trains at those alphas: docs/results.md)",
    )
    p.add_argument(
        "--budget-arm",
        action="append",
        choices=ARMS,
        help="with --step budget, train only these arms (repeatable; default all three). no-kd needs no teacher: "
        "the student alone's curve on a machine that cannot keep one",
    )
    p.add_argument(
        "--export",
        metavar="DIR",
        help="copy the measured tables to DIR (e.g. results): DIR/study-<profile>/ and DIR/ablation-<profile>*.csv",
    )
    p.add_argument(
        "--export-only",
        action="store_true",
        help="train nothing: copy what is finished to --export's folder (default results)",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="train this many runs side by side, one process each with its share of the CPU threads "
        "(default 1; on 2 cores, 2 jobs trained 1.19x more student steps an hour, and a one-epoch alpha "
        "sweep ran 1.07x faster: for long runs; docs/command-line.md); "
        "job n > 1 writes its output to runs/study-<profile>/job-<n>.log",
    )
    p.add_argument("--shared-job", action="store_true", help=argparse.SUPPRESS)  # started by --jobs
    test_root_argument(p)
    training_arguments(p, retrain=False)
    p.set_defaults(run=_study)


def _print_study(tables: dict) -> None:
    """What each step of the study measured, in short tables, and what was left out."""
    if "chosen" in tables:
        print(f"alpha chosen on the validation split: {tables['chosen']}")
    for name in ("seeds", "labeller"):
        if name in tables:
            print(
                tables[name].groupby("arm", sort=False)["validation"].agg(["mean", "std", "count"]).round(4).to_string()
            )
    if "teacher-strength" in tables:
        print(tables["teacher-strength"].round(4).to_string())
    if "patient" in tables:
        print(tables["patient"][["arm", "epochs", "best_epoch", "validation"]].round(4).to_string(index=False))
    if "unseen" in tables:
        table, arms = tables["unseen"], tables["unseen-arms"]
        skip = ("arm", "seed", "alpha", "label_fraction")
        print(table[["arm", "seed", *[c for c in table.columns if c not in skip]]].round(3).to_string(index=False))
        wanted = ["model", "scope", "mean", "low", "high", "drop", "gain", "gain_low", "gain_high"]
        shown = arms[arms.scope.isin(["seen", "unseen"])][[c for c in wanted if c in arms.columns]]
        print(shown.round(3).to_string(index=False))
    if "budget-arms" in tables:
        wanted = [
            "arm",
            "teacher",
            "label_fraction",
            "seeds",
            "validation",
            "seen",
            "unseen",
            "seen_gain",
            "unseen_gain",
        ]
        arms = tables["budget-arms"]
        print(arms[[c for c in wanted if c in arms.columns]].round(3).to_string(index=False))
    for note in tables["notes"]:
        print(note)


def _export_study(study, profile, target) -> int:
    """The measured tables, the teacher's curve and the figures copied to ``target``
    (:func:`kdas_utils.study.export`)."""
    matplotlib.use("agg")  # figures are written to files, never shown
    written = study.export(profile, target)
    print(f"{len(written)} files copied to {target}: " + ", ".join(path.name for path in written))
    return 0
