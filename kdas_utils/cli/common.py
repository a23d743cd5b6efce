"""What every ``kdas`` command shares: the options of profile, training and test roots, and reading them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..arguments import (
    positive_int,
)
from ..config import (
    PROFILE_NAMES,
    TEST_ROOTS_VARIABLE,
    test_roots,
)
from ..data import find_test_roots, mirror_fetch
from ..errors import USER_ERRORS
from ..runs import (
    ARMS,
    StudentRecipe,
)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that a user's input causes: reported in one line, not as a traceback
    (:data:`kdas_utils.errors.USER_ERRORS`)."""
    return USER_ERRORS


def parse_plan(text: str) -> dict[str, int] | str:
    """``--ablation``'s value, read by the parser before any work: ``"no-kd=3,kdas=3"`` ->
    ``{"no-kd": 3, "kdas": 3}`` (arms from :data:`kdas_utils.kdas.ARMS`), or ``"finished"`` as it is."""
    if text == "finished":
        return text
    plan = {}
    for item in filter(None, text.split(",")):
        arm, _, count = item.partition("=")
        if arm not in ARMS or not count.isdigit():
            raise argparse.ArgumentTypeError(
                f"plan item {item!r}: write ARM=SEEDS with ARM among {list(ARMS)}, e.g. kdas=3, "
                f"or 'finished' for the runs already trained"
            )
        plan[arm] = int(count)
    return plan


def profile_argument(parser):
    parser.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default=None,
        help="quick (synthetic, CPU minutes) | standard (real data, CPU hours) | colab (official teacher, "
        "pretrained student, one GPU session) | paper (the full recipe, GPU); "
        "default: $KDAS_PROFILE, else colab with CUDA and real data, quick otherwise",
    )
    parser.add_argument("--device", default=None, help="cuda | mps | cpu (default: the best available)")
    parser.add_argument("--debug", action="store_true", help="on an error, show the Python traceback too")


def training_arguments(parser, retrain: bool = True):
    if retrain:  # not for the study, which loads every finished run
        parser.add_argument("--retrain", action="store_true", help="start afresh even if a finished run exists")
    parser.add_argument("--epochs", type=positive_int, help="override the profile's epochs (at least 1)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the forward passes through torch.compile (minutes to compile; "
        "python -m kdas_utils.bench --compile measures whether it helps)",
    )


def test_root_argument(parser):
    parser.add_argument(
        "--test-root",
        action="append",
        metavar="DIR",
        help="also score on the test sets under DIR (a PraNet-layout folder or its TestDataset/), e.g. "
        "unseen hospitals such as CVC-ColonDB and ETIS; repeatable; added to $KDAS_TEST_ROOTS. Sets of "
        "such a root count as unseen unless named Kvasir or CVC-ClinicDB",
    )


def use_test_roots(args) -> list[Path] | None:
    """Check the ``--test-root`` folders now (a one-line error names a bad one), add them to
    ``$KDAS_TEST_ROOTS`` for this process (which :func:`kdas_utils.runs.profile_splits` reads for
    the profiles on the real data) and return every extra root; ``None`` without ``--test-root``."""

    if not getattr(args, "test_root", None):
        return None
    roots = list(dict.fromkeys([*test_roots(), *(Path(r).expanduser().resolve() for r in args.test_root)]))
    find_test_roots(roots)
    os.environ[TEST_ROOTS_VARIABLE] = os.pathsep.join(str(r) for r in roots)
    return roots


def config_changes(args) -> dict:
    """The TrainConfig fields the training options override."""
    return ({"epochs": args.epochs} if args.epochs else {}) | ({"compile": True} if args.compile else {})


def drive_fetch(args):
    """How Google Drive files arrive: gdown (default), or a plain HTTP mirror given with --mirror."""
    return mirror_fetch(args.mirror) if args.mirror else None


def recipe_of(args):
    """``(recipe, changes)``: the one :class:`~kdas_utils.runs.StudentRecipe` of ``kdas distill``'s
    options (``--epochs`` among them) and the other TrainConfig overrides."""
    return StudentRecipe.split(
        config_changes(args),
        arm=args.arm,
        alpha=args.alpha,
        tau=args.tau,
        teacher_epoch=args.teacher_epoch,
        label_fraction=args.label_fraction,
        teacher_int8=args.teacher_int8,
    )
