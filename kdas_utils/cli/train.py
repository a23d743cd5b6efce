"""``kdas train-teacher`` and ``kdas distill``."""

from __future__ import annotations

import json

from ..arguments import (
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)
from ..config import (
    get_profile,
)
from ..errors import UsageError
from ..evaluate import summarize_ablation
from ..kdas import ALPHA, TAU
from ..runs import (
    ARMS,
    finished_plan,
    run_ablation,
    summarize_teacher,
    train_student,
    train_teacher,
)
from .common import (
    config_changes,
    parse_plan,
    profile_argument,
    recipe_of,
    training_arguments,
)


def _train_teacher(args) -> int:
    profile = get_profile(args.profile)
    if args.label_fraction < 1 and args.weights:
        raise UsageError("--weights loads the official teacher, which saw every mask; leave out --label-fraction")
    partial = {"label_fraction": args.label_fraction, "seed": args.seed}
    run = train_teacher(
        profile, retrain=args.retrain, weights=args.weights, device=args.device, **partial, **config_changes(args)
    )
    print(json.dumps(summarize_teacher(profile, run, args.device, **partial), indent=2))
    print(f"teacher: {run.source} -> {run.path}")
    return 0


def add_train_teacher(sub) -> None:
    """The ``kdas train-teacher`` parser, beside its handler :func:`_train_teacher`."""
    p = sub.add_parser(
        "train-teacher",
        help="train, resume or load the Polyp-PVT teacher",
        description="Train the Polyp-PVT teacher of a profile (or resume it, or load a finished run), "
        "then print its validation and test mean Dice.",
    )
    profile_argument(p)
    training_arguments(p)
    p.add_argument("--weights", help="use an official PolypPVT.pth instead of training")
    p.add_argument(
        "--label-fraction",
        type=fraction,
        default=1.0,
        metavar="F",
        help="the teacher sees the masks of this share of the training frames only, drawn from --seed as for "
        "a student of that seed; its own folder, teacher-l<F>-s<seed>-<profile> (default 1: every mask)",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the weights, data order and masks (default 0)"
    )
    p.set_defaults(run=_train_teacher)


def _distill(args) -> int:
    profile = get_profile(args.profile)
    if args.ablation and args.teacher_int8:
        raise UsageError("--teacher-int8 trains one run; leave it out of --ablation")
    recipe, changes = recipe_of(args)
    if args.ablation:
        plan = finished_plan(profile, recipe) if args.ablation == "finished" else args.ablation
        if not plan:
            raise UsageError(
                f"no finished student run of the {profile.name!r} profile yet with these settings; "
                f"give a plan instead, e.g. --ablation no-kd=3,kdas=3,pixel=3"
            )
        table = run_ablation(profile, plan, recipe, device=args.device, **changes)
        print(summarize_ablation(table).to_string())
        csv = recipe.table(profile)
        print(f"written {csv} and {csv.with_suffix('.png')}")
        return 0
    run = train_student(profile, recipe, args.seed, retrain=args.retrain, device=args.device, **changes)
    best = max(run.history, key=lambda h: h["val_dice"]) if run.history else {}
    print(
        f"student {args.arm} (seed {args.seed}): {run.source} -> {run.path}; "
        f"validation Dice {best.get('val_dice', float('nan')):.4f} at epoch {best.get('epoch')}"
    )
    return 0


def add_distill(sub) -> None:
    """The ``kdas distill`` parser, beside its handler :func:`_distill`."""
    p = sub.add_parser(
        "distill",
        help="distil a student (one arm and seed, or the whole ablation)",
        description="Train the KDAS student from the profile's teacher (trained first if missing).",
    )
    profile_argument(p)
    p.add_argument(
        "--arm",
        default="kdas",
        choices=list(ARMS),
        help="the distillation terms (default: kdas, as the series implements it: Attention-KD on the "
        "heads + covariance SGM; pixel: classic pixel-wise KD)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights and data order (default 0)")
    p.add_argument(
        "--alpha",
        type=unit_interval,
        default=ALPHA,
        help=f"weight of the distillation terms, in [0, 1] (default {ALPHA:g})",
    )
    p.add_argument(
        "--tau", type=positive_float, default=TAU, help=f"distillation temperature, above 0 (default {TAU:g})"
    )
    p.add_argument(
        "--teacher-epoch",
        type=positive_int,
        metavar="N",
        help="distil from the teacher's snapshot of epoch N (kept by the profile) instead of its best",
    )
    p.add_argument(
        "--teacher-int8",
        action="store_true",
        help="run the frozen teacher's linear layers in int8 (CPU only, faster; its error is measured by "
        "python -m kdas_utils.bench --int8-check; the run gets its own folder, -int8)",
    )
    p.add_argument(
        "--label-fraction",
        type=fraction,
        default=1.0,
        metavar="F",
        help="the student sees the masks of this share of the training frames only (drawn from the seed), "
        "the teacher's maps on all of them (default 1: every mask)",
    )
    p.add_argument(
        "--ablation",
        metavar="PLAN",
        type=parse_plan,
        help="run the ablation instead, e.g. no-kd=3,kdas=3,pixel=3; "
        "'finished' scores the runs already trained and trains nothing",
    )
    training_arguments(p)
    p.set_defaults(run=_distill)
