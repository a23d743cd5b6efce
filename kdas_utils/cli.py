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
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch

from . import study
from .arguments import (
    OneLineParser,
    fraction,
    image_size,
    non_negative_int,
    positive_float,
    positive_int,
    threshold,
    unit_interval,
)
from .config import PROFILE_NAMES, TEST_ROOTS_VARIABLE, WEIGHTS_VARIABLE, get_profile, runs_dir, test_roots, weights_dir
from .data import find_dataset, find_test_roots, mirror_fetch, prepare_kvasir_seg, prepare_pranet
from .data.download import sha256sum
from .distill import ALPHA, TAU
from .errors import USER_ERRORS, KDASError, UsageError
from .evaluate import domain_frames, domain_table, evaluate_models, summarize_ablation, write_table
from .export import export_onnx
from .models import load_network, load_official, load_trained
from .models.pretrained import PVT_V2_RELEASE, prepare_polyp_pvt, prepare_pvt_v2
from .predict import BACKENDS, Predictor, predict_inputs, stream_source
from .runs import (
    ARMS,
    StudentRecipe,
    finished_plan,
    profile_root,
    profile_splits,
    run_ablation,
    share_runs,
    summarize_teacher,
    train_student,
    train_teacher,
    trained_checkpoints,
)
from .study import STEPS


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that a user's input causes: reported in one line, not as a traceback
    (:data:`kdas_utils.errors.USER_ERRORS`)."""
    return USER_ERRORS


def parse_plan(text: str) -> dict[str, int] | str:
    """``--ablation``'s value, read by the parser before any work: ``"no-kd=3,kdas=3"`` ->
    ``{"no-kd": 3, "kdas": 3}`` (arms from :data:`kdas_utils.runs.ARMS`), or ``"finished"`` as it is."""
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


def _profile_argument(parser):
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


def _training_arguments(parser, retrain: bool = True):
    if retrain:  # not for the study, which loads every finished run
        parser.add_argument("--retrain", action="store_true", help="start afresh even if a finished run exists")
    parser.add_argument("--epochs", type=positive_int, help="override the profile's epochs (at least 1)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the forward passes through torch.compile (minutes to compile; "
        "python -m kdas_utils.bench --compile measures whether it helps)",
    )


def _test_root_argument(parser):
    parser.add_argument(
        "--test-root",
        action="append",
        metavar="DIR",
        help="also score on the test sets under DIR (a PraNet-layout folder or its TestDataset/), e.g. "
        "unseen hospitals such as CVC-ColonDB and ETIS; repeatable; added to $KDAS_TEST_ROOTS. Sets of "
        "such a root count as unseen unless named Kvasir or CVC-ClinicDB",
    )


def _use_test_roots(args) -> list[Path] | None:
    """Check the ``--test-root`` folders now (a one-line error names a bad one), add them to
    ``$KDAS_TEST_ROOTS`` for this process (which :func:`kdas_utils.runs.profile_splits` reads for
    the profiles on the real data) and return every extra root; ``None`` without ``--test-root``."""

    if not getattr(args, "test_root", None):
        return None
    roots = list(dict.fromkeys([*test_roots(), *(Path(r).expanduser().resolve() for r in args.test_root)]))
    find_test_roots(roots)
    os.environ[TEST_ROOTS_VARIABLE] = os.pathsep.join(str(r) for r in roots)
    return roots


def _changes(args) -> dict:
    """The TrainConfig fields the training options override."""
    return ({"epochs": args.epochs} if args.epochs else {}) | ({"compile": True} if args.compile else {})


def _fetch(args):
    """How Google Drive files arrive: gdown (default), or a plain HTTP mirror given with --mirror."""
    return mirror_fetch(args.mirror) if args.mirror else None


def _prepare_data(args) -> int:
    if args.download == "pranet":
        root = prepare_pranet(args.into, fetch=_fetch(args))
        found = find_dataset(root, verify=False)
        tests = ", ".join(f"{name} {len(pairs)}" for name, pairs in found["test"].items())
        print(
            f"PraNet's split at {root}: {len(found['train'])} training frames; test sets: {tests}. "
            f"It is the default data root with --into data, else: export KDAS_DATA_ROOT={root}"
        )
        return 0
    if args.download:
        root = prepare_kvasir_seg(args.into, allow_unpinned=args.allow_unpinned)
        print(
            f"Kvasir-SEG in the PraNet layout at {root} (900 training / 100 test frames, seeded split); "
            f"it is the default data root with --into data, else: export KDAS_DATA_ROOT={root}"
        )
        return 0
    profile = get_profile(args.profile)
    root = profile_root(profile)
    found = find_dataset(root)
    print(f"{profile.name} profile data at {root}: {len(found['train'])} training pairs")
    for name, pairs in found["test"].items():
        print(f"  test set {name}: {len(pairs)} pairs")
    return 0


def add_prepare_data(sub) -> None:
    """The ``kdas prepare-data`` parser, beside its handler :func:`_prepare_data`."""
    p = sub.add_parser(
        "prepare-data",
        help="write the synthetic set or check the real data; download Kvasir-SEG",
        description="Write the quick profile's synthetic data, or check the real data of the standard "
        "and paper profiles (PraNet layout under $KDAS_DATA_ROOT).",
    )
    _profile_argument(p)
    p.add_argument(
        "--download",
        choices=("pranet", "kvasir-seg"),
        help="download instead, and arrange as <into>/polyp in the PraNet layout: pranet (PraNet's train and "
        "test archives from Google Drive, with gdown: the split of the paper's numbers) or kvasir-seg (Simula)",
    )
    p.add_argument("--into", default="data", help="folder for --download (default: data)")
    p.add_argument(
        "--allow-unpinned", action="store_true", help="accept a first download that has no published checksum"
    )
    p.add_argument("--mirror", metavar="URL", help="with --download pranet: fetch <URL>/TrainDataset.zip etc. instead")
    p.set_defaults(run=_prepare_data)


def _prepare_weights(args) -> int:
    if args.what == "polyp-pvt":
        path = prepare_polyp_pvt(fetch=_fetch(args))
        print(
            f"official Polyp-PVT teacher: {path} (sha256 {sha256sum(path)}); loads strictly into build_teacher(). "
            f"The colab and paper profiles now distil from it."
        )
        return 0
    for path in prepare_pvt_v2(url=args.mirror or PVT_V2_RELEASE):
        print(f"ImageNet backbone: {path} (sha256 {sha256sum(path)})")
    print(f"build_teacher(pretrained=True) and build_student(pretrained=True) load them from {WEIGHTS_VARIABLE}")
    print(f"({weights_dir()}), offline.")
    return 0


def add_prepare_weights(sub) -> None:
    """The ``kdas prepare-weights`` parser, beside its handler :func:`_prepare_weights`."""
    p = sub.add_parser(
        "prepare-weights",
        help="fetch the official Polyp-PVT teacher, or the ImageNet PVTv2 backbones",
        description="Fetch weight files into $KDAS_WEIGHTS_DIR (default data/weights), check that they load "
        "strictly, and record their sha256. polyp-pvt: the trained Polyp-PVT (PolypPVT.pth, about 100 MB) from "
        "the Google Drive folder the Polyp-PVT README links, with gdown; the colab and paper profiles then distil "
        "from it. pvt-v2: the PVTv2 release files pvt_v2_b2.pth and pvt_v2_b0.pth from the authors' GitHub "
        "release, which build_teacher/build_student(pretrained=True) then load offline.",
    )
    p.add_argument("what", choices=("polyp-pvt", "pvt-v2"), help="which weights")
    p.add_argument("--mirror", metavar="URL", help="fetch <URL>/<file name> from a plain HTTP mirror instead")
    p.add_argument("--debug", action="store_true", help="on an error, show the Python traceback too")
    p.set_defaults(run=_prepare_weights)


def _train_teacher(args) -> int:
    profile = get_profile(args.profile)
    if args.label_fraction < 1 and args.weights:
        raise UsageError("--weights loads the official teacher, which saw every mask; leave out --label-fraction")
    partial = {"label_fraction": args.label_fraction, "seed": args.seed}
    run = train_teacher(
        profile, retrain=args.retrain, weights=args.weights, device=args.device, **partial, **_changes(args)
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
    _profile_argument(p)
    _training_arguments(p)
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


def _recipe(args):
    """``(recipe, changes)``: the one :class:`~kdas_utils.runs.StudentRecipe` of ``kdas distill``'s
    options (``--epochs`` among them) and the other TrainConfig overrides."""
    return StudentRecipe.split(
        _changes(args),
        arm=args.arm,
        alpha=args.alpha,
        tau=args.tau,
        teacher_epoch=args.teacher_epoch,
        label_fraction=args.label_fraction,
        teacher_int8=args.teacher_int8,
    )


def _distill(args) -> int:
    profile = get_profile(args.profile)
    if args.ablation and args.teacher_int8:
        raise UsageError("--teacher-int8 trains one run; leave it out of --ablation")
    recipe, changes = _recipe(args)
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
    _profile_argument(p)
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
    _training_arguments(p)
    p.set_defaults(run=_distill)


def _study(args) -> int:
    """The study of notebook 07 (:func:`kdas_utils.study.run_study`); every step loads what is finished."""
    profile = get_profile(args.profile)
    _use_test_roots(args)
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
            _print_study(study.run_study(profile, plan, args.device, steps=steps, **_changes(args)))
        return 0
    if args.jobs > 1:
        with _side_by_side(args, study.study_dir(profile)), share_runs():
            return _study_here(args, profile, plan, steps)
    return _study_here(args, profile, plan, steps)


def _study_here(args, profile, plan, steps) -> int:
    # --step unseen or budget asks for that step: if it cannot run, that is the command's error
    strict = bool(study.RECORDED_ALPHA_STEPS & set(args.step or []))
    _print_study(study.run_study(profile, plan, args.device, steps=steps, strict=strict, **_changes(args)))
    return _export_study(study, profile, args.export) if args.export else 0


@contextlib.contextmanager
def _side_by_side(args, folder: Path):
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
    _profile_argument(p)
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
    _test_root_argument(p)
    _training_arguments(p, retrain=False)
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


def _evaluate(args) -> int:
    profile = get_profile(args.profile)
    extra_roots = _use_test_roots(args)  # given: scored whatever the profile's data
    if args.checkpoint or args.weights:
        models = {Path(p).parent.name: load_trained(p) for p in args.checkpoint or []}
        models |= {Path(p).stem: load_official(p) for p in args.weights or []}
    else:
        models = {label: load_network(path) for label, path in trained_checkpoints(profile).items()}
        if not models:
            raise UsageError(
                f"no checkpoint of the {profile.name!r} profile under "
                f"{runs_dir() / 'checkpoints'}; train first (kdas train-teacher --profile {profile.name}) "
                f"or pass --checkpoint PATH"
            )
    out = Path(args.out) if args.out else runs_dir() / f"evaluation-{profile.name}"
    splits = profile_splits(profile, extra_roots=extra_roots)
    table, _ = evaluate_models(
        models,
        splits.test,
        profile.image_size,
        args.device,
        save_dir=out / "predictions" if args.save_predictions else None,
    )
    table.insert(0, "domain", [splits.domains[name] for name in table.index.get_level_values("test set")])
    csv, md = write_table(table, out)
    print(table.round(4).to_string())
    baseline = "student alone" if "student alone" in models else None
    domains = domain_table(domain_frames(models, splits, profile.image_size, args.device), splits.domains, baseline)
    dcsv, dmd = write_table(domains, out, "domains")
    print(domains.round(3).to_string())
    print(f"written {csv}, {md}, {dcsv} and {dmd} (seen and unseen, 95% bootstrap intervals over frames)")
    return 0


def add_evaluate(sub) -> None:
    """The ``kdas evaluate`` parser, beside its handler :func:`_evaluate`."""
    p = sub.add_parser(
        "evaluate",
        help="score models on every test set with the field's metrics",
        description="Evaluate the profile's teacher and students (or the given checkpoints) on every "
        "test set (the data root's and those of --test-root / $KDAS_TEST_ROOTS, each labelled seen or unseen); "
        "write CSV and Markdown tables, and the seen / unseen means with 95% bootstrap intervals over frames.",
    )
    _profile_argument(p)
    p.add_argument("--checkpoint", nargs="+", help="engine checkpoints (best.pt) to evaluate instead")
    p.add_argument(
        "--weights",
        nargs="+",
        help="official Polyp-PVT-format files to evaluate instead (PolypPVT.pth, or a KDAS student saved "
        "by the released code; B2 or B0 is told from the file)",
    )
    p.add_argument("--save-predictions", action="store_true", help="also save 8-bit PNG predictions")
    _test_root_argument(p)
    p.add_argument("--out", help="output folder (default: runs/evaluation-<profile>)")
    p.set_defaults(run=_evaluate)


def _export(args) -> int:
    if args.checkpoint:
        checkpoint = Path(args.checkpoint)
    else:
        checkpoint = StudentRecipe(args.arm).folder(get_profile(args.profile), args.seed) / "best.pt"
    if not checkpoint.exists():
        raise UsageError(
            f"{checkpoint} does not exist; train it first "
            f"(kdas distill --profile {args.profile or 'quick'} --arm {args.arm}) or pass --checkpoint PATH"
        )
    path = export_onnx(load_trained(checkpoint), args.out, image_size=args.image_size)
    print(
        f"exported {checkpoint} -> {path} (input image (B, 3, {args.image_size}, {args.image_size}), "
        f"output probability (B, 1, {args.image_size}, {args.image_size}))"
    )
    return 0


def add_export(sub) -> None:
    """The ``kdas export`` parser, beside its handler :func:`_export`."""
    p = sub.add_parser(
        "export",
        help="export a student to ONNX (dynamic batch)",
        description="Export a trained student to ONNX for onnxruntime: input (B, 3, S, S) "
        "ImageNet-normalised, output (B, 1, S, S) probabilities; S fixed at export.",
    )
    _profile_argument(p)
    p.add_argument("--checkpoint", help="an engine checkpoint (default: the profile's KDAS student)")
    p.add_argument("--arm", default="kdas", choices=list(ARMS))
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--image-size", type=image_size, default=352, help="input size S, a multiple of 32 (default 352)")
    p.add_argument("--out", default="kdas_student.onnx", help="output file (default: kdas_student.onnx)")
    p.set_defaults(run=_export)


def _predict(args) -> int:
    profile = get_profile(args.profile)
    if not args.inputs and not args.stream:
        raise UsageError("give image or video files or folders (INPUT ...), or --stream URL_OR_DEVICE")
    if args.max_frames and not args.stream:
        raise UsageError("--max-frames stops a live source: give it with --stream")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the outputs that --overwrite would replace: give one of them")
    predictor = Predictor(
        args.weights,
        onnx=args.onnx,
        backend=args.backend,
        profile=profile,
        size=args.size,
        threshold=args.threshold,
        tta=args.tta,
        device=args.device,
    )
    out = Path(args.out) if args.out else runs_dir() / "predictions"
    print(
        f"predicting with {predictor.source} at {predictor.size} px on {predictor.backend}"
        + (" with flip TTA" if args.tta else "")
    )
    stream = stream_source(args.stream, args.stream_name) if args.stream else None
    report = predict_inputs(
        predictor,
        args.inputs,
        out,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        resume=args.resume,
        save_frames=args.save_frames,
        stream=stream,
        max_frames=args.max_frames,
    )
    resumed = f" ({report.resumed} taken over from the earlier run)" if report.resumed else ""
    print(
        f"{report.frames} frames in {report.seconds:.1f} s{resumed}: {report.frames_per_second:.1f} frames/s "
        f"({report.network_seconds:.1f} s in the network); outputs and {report.csv.name} in {out}"
    )
    for video in report.videos:
        print(f"overlay video: {video}")
    if stream is not None and report.latencies:
        latency = np.array(report.latencies) * 1000
        print(
            f"latency from decoding to writing: median {np.median(latency):.0f} ms, 95th percentile "
            f"{np.percentile(latency, 95):.0f} ms; {report.dropped} frame(s) dropped to keep up"
        )
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped (listed above and in {report.csv})", file=sys.stderr)
        return 2
    return 0


def add_predict(sub) -> None:
    """The ``predict`` subcommand's parser (beside its handler, :func:`_predict`)."""
    p = sub.add_parser(
        "predict",
        help="run a trained student on your own frames, folders, videos and live streams",
        description="Predict polyp masks on image files (JPEG, PNG, TIFF, BMP), folders of them (recursive, "
        "sorted), videos (MP4, AVI, MOV, MKV; decoded with PyAV) and a live stream (--stream). Per image: the "
        "binary mask (PNG, the frame's size) and an overlay PNG. Per video: the overlay video (<name>_overlay.mp4) "
        "and every frame's mask in one lossless video (<name>_masks.mkv); per-frame PNGs only with "
        "--save-frames. predictions.csv: one row per image and video frame (time stamp, polyp found, area "
        "fraction, max probability, bounding box), written as frames finish. Decoding, the network and "
        "writing run at once. Ctrl-C leaves every output valid for the frames done; --resume continues. "
        "Exits 2 if any file was skipped.",
        epilog="Example: kdas predict frames/ clip.mp4 --weights runs/checkpoints/student-kdas-s0-standard/best.pt "
        "--out predictions",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders of them, video files")
    p.add_argument(
        "--weights",
        help="an engine checkpoint (best.pt), a state_dict of the student or teacher "
        "(torch.save(model.state_dict(), path)), or a Polyp-PVT-format file (default: the profile's trained "
        "KDAS student, seed 0)",
    )
    p.add_argument("--onnx", metavar="FILE", help="run this ONNX student (kdas export) with onnxruntime instead")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what runs the network: auto (ONNX Runtime on the CPU when installed, else PyTorch; the weights are "
        "exported once and cached in runs/onnx-cache/), torch, onnx, or onnx-int8 (its matrix products in int8; "
        "tolerance in docs/predict.md)",
    )
    p.add_argument(
        "--stream",
        metavar="URL_OR_DEVICE",
        help="a live source FFmpeg opens (rtsp://, http://, udp://, a camera such as /dev/video0): the overlay "
        "and masks are written as frames arrive, frames are dropped when the network falls behind, and the "
        "latency of each frame goes to the CSV; stop with Ctrl-C or --max-frames",
    )
    p.add_argument("--stream-name", help="the name of the stream's outputs (default: the address's last part)")
    p.add_argument("--max-frames", type=positive_int, help="with --stream: stop after this many frames")
    p.add_argument("--out", help="output folder (default: runs/predictions)")
    p.add_argument(
        "--threshold", type=threshold, default=0.5, help="probability at or above which a pixel is polyp (default 0.5)"
    )
    p.add_argument(
        "--size",
        type=image_size,
        help="the network's input size, a multiple of 32: smaller is faster (docs/predict.md has a table of "
        "frames/s and Dice at 256, 320, 352); default: the checkpoint's training size, else 352",
    )
    p.add_argument("--batch-size", type=positive_int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped frame's prediction")
    p.add_argument("--save-frames", action="store_true", help="also write each video frame's mask and overlay as PNGs")
    p.add_argument("--resume", action="store_true", help="continue a run into --out that stopped part-way")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist already")
    _profile_argument(p)
    p.set_defaults(run=_predict)


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


if __name__ == "__main__":
    sys.exit(main())
