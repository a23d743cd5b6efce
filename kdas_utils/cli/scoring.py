"""``kdas evaluate`` and ``kdas export``."""

from __future__ import annotations

from pathlib import Path

from ..arguments import (
    image_size,
    non_negative_int,
)
from ..config import (
    get_profile,
    runs_dir,
)
from ..errors import UsageError
from ..evaluate import domain_frames, domain_table, evaluate_models, write_table
from ..export import export_onnx
from ..models import load_network, load_official, load_trained
from ..runs import (
    ARMS,
    StudentRecipe,
    profile_splits,
    trained_checkpoints,
)
from .common import (
    profile_argument,
    test_root_argument,
    use_test_roots,
)


def _evaluate(args) -> int:
    profile = get_profile(args.profile)
    extra_roots = use_test_roots(args)  # given: scored whatever the profile's data
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
    profile_argument(p)
    p.add_argument("--checkpoint", nargs="+", help="engine checkpoints (best.pt) to evaluate instead")
    p.add_argument(
        "--weights",
        nargs="+",
        help="official Polyp-PVT-format files to evaluate instead (PolypPVT.pth, or a KDAS student saved "
        "by the released code; B2 or B0 is told from the file)",
    )
    p.add_argument("--save-predictions", action="store_true", help="also save 8-bit PNG predictions")
    test_root_argument(p)
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
    profile_argument(p)
    p.add_argument("--checkpoint", help="an engine checkpoint (default: the profile's KDAS student)")
    p.add_argument("--arm", default="kdas", choices=list(ARMS))
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--image-size", type=image_size, default=352, help="input size S, a multiple of 32 (default 352)")
    p.add_argument("--out", default="kdas_student.onnx", help="output file (default: kdas_student.onnx)")
    p.set_defaults(run=_export)
