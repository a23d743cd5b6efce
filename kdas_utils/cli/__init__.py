"""The ``kdas`` command: the notebooks' steps from a terminal, with the same engine and profiles.

    kdas prepare-data  --profile quick            # write the synthetic set / check the real data
    kdas prepare-data  --download pranet          # PraNet's train and test sets from Google Drive (gdown)
    kdas prepare-weights polyp-pvt                # the official Polyp-PVT teacher (gdown); pvt-v2: ImageNet backbones
    kdas train-teacher --profile standard         # train (or resume, or load) the teacher
    kdas distill       --profile standard --arm kdas --seed 0
    kdas distill       --profile standard --ablation no-kd=3,kdas=3,at=1,sgm=1,released=1
    kdas distill       --profile standard --ablation finished   # score the finished runs, train nothing
    kdas distill       --profile standard --arm pixel --alpha 0.1 --teacher-epoch 3
    kdas distill       --profile standard --ablation no-kd=3,kdas=3 --label-fraction 0.25   # a quarter of the masks
    kdas study         --profile standard --export results   # when does distillation help? (notebook 07)
    kdas evaluate      --profile standard         # teacher, student alone, KDAS student -> runs/evaluation-<profile>/
    kdas export        --profile standard --out kdas_student.onnx
    kdas predict       my_frames/ colonoscopy.mp4 --out predictions   # masks, overlays, a CSV per frame

Every run is resumable: interrupt it and type the same command again.

An error a user can cause (data, weights, checkpoints, settings) ends the command with one line,
``kdas <command>: error: <message>``, and exit status 2; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import sys

from ..arguments import OneLineParser
from .common import parse_plan, user_errors
from .predicting import add_predict
from .prepare import add_prepare_data, add_prepare_weights
from .scoring import add_evaluate, add_export
from .studies import add_study
from .train import add_distill, add_train_teacher

__all__ = ["build_parser", "main", "parse_plan", "user_errors"]


def build_parser() -> argparse.ArgumentParser:
    """The ``kdas`` parser: one subparser per command, each added by the ``add_<command>`` function
    written beside its handler."""
    parser = OneLineParser(
        prog="kdas",
        description="KDAS: distil Polyp-PVT into a 3.65M-parameter student. The steps of the notebooks, "
        "from a terminal; every run resumes where it stopped.",
        epilog="Example: kdas train-teacher --profile quick && kdas distill --profile quick "
        "&& kdas evaluate --profile quick",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_prepare_data(sub)
    add_prepare_weights(sub)
    add_train_teacher(sub)
    add_distill(sub)
    add_study(sub)
    add_evaluate(sub)
    add_export(sub)
    add_predict(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a ``kdas`` command; a user's error ends it with one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # kdas study --jobs starts it again
    try:
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl-C: what was written stays valid (checkpoints, predictions)
        hint = "run it again with --resume to continue" if args.command == "predict" else "run it again to resume"
        print(f"kdas {args.command}: stopped (Ctrl-C); {hint}", file=sys.stderr)
        return 130
    except user_errors() as error:
        if args.debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"kdas {args.command}: error: {message}", file=sys.stderr)
        return 2
