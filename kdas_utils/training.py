"""From a profile to a trained network: the data of a profile, and the teacher's recipe.

Notebooks 02 and 05 and the command line call these, so that a profile means the same
data, split and settings everywhere::

    from kdas_utils.config import get_profile
    from kdas_utils.training import train_teacher
    run = train_teacher(get_profile("quick"))          # loads runs/checkpoints/teacher-quick/best.pt if present
    run.model, run.source, run.result.history_frame()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import Profile, data_root, runs_dir, synthetic_root
from .data import DatasetError, PolypDataset, eval_transforms, find_dataset, find_pairs, make_synthetic, train_transforms, train_val_split
from .data.pairs import Pair
from .engine import CheckpointError, TrainConfig, Trainer, TrainResult, load_checkpoint, load_trained, settings_changed

VAL_FRACTION = 0.1
SPLIT_SEED = 0


@dataclass
class Splits:
    """The pairs a profile trains, selects and tests on.

    Attributes:
        root: the PraNet-layout folder they come from.
        train, val: the training pairs and the validation split carved from them.
        test: ``{test set name: pairs}``; used by evaluation only, never for selection.
    """

    root: Path
    train: list[Pair]
    val: list[Pair]
    test: dict[str, list[Pair]]


def profile_root(profile: Profile) -> Path:
    """The data folder of a profile: the synthetic set (written on first use) or the real data."""
    if profile.data == "synthetic":
        return make_synthetic(synthetic_root(), seed=0, n_train=profile.synthetic_train, n_test=profile.synthetic_test)
    root = data_root()
    if not (root / "TrainDataset").is_dir():
        raise DatasetError(
            f"{root}: no TrainDataset/ folder, and the {profile.name!r} profile trains on the real data. "
            f"Put Kvasir-SEG + CVC-ClinicDB there in the PraNet layout (see notebook 01) or set "
            f"KDAS_DATA_ROOT; or choose KDAS_PROFILE=quick for the synthetic set."
        )
    return root


def profile_splits(profile: Profile, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> Splits:
    """Find and check the pairs of ``profile`` and carve the validation split."""
    root = profile_root(profile)
    found = find_dataset(root)
    train, val = train_val_split(found["train"], val_fraction, seed)
    return Splits(root=root, train=train, val=val, test=found["test"])


def profile_datasets(profile: Profile, augment: bool = True, splits: Splits | None = None, cache: bool = True):
    """``(train_set, val_set)`` at the profile's image size; augmentation on the first only.
    With ``cache``, frames are decoded and resized once (see :class:`PolypDataset`)."""
    splits = splits or profile_splits(profile)
    size = profile.image_size if cache else None
    return (PolypDataset(splits.train, train_transforms(profile.image_size, augment=augment), cache_size=size),
            PolypDataset(splits.val, eval_transforms(profile.image_size), cache_size=size))


def checkpoint_dir(role: str, profile: Profile) -> Path:
    """``runs/checkpoints/<role>-<profile>``, e.g. ``runs/checkpoints/teacher-quick``."""
    return runs_dir() / "checkpoints" / f"{role}-{profile.name}"


@dataclass
class Run:
    """What :func:`train_teacher` and :func:`train_student` return.

    Attributes:
        model: the selected network, in ``eval()`` mode.
        source: ``"trained"``, ``"checkpoint"`` (an earlier run's ``best.pt``) or ``"weights"``
            (an official ``PolypPVT.pth``).
        path: the file the weights now come from.
        result: the training record (``None`` when nothing was trained in this call).
        history: the epoch history, also for a loaded engine checkpoint (empty for ``weights``).
        steps: the step history, likewise.
    """

    model: nn.Module
    source: str
    path: Path
    result: TrainResult | None
    history: list[dict]
    steps: list[dict]


def _finished(out_dir: Path, epochs: int) -> dict | None:
    """``last.pt``'s state if ``out_dir`` holds a run that trained all ``epochs`` (and its
    ``best.pt``), else ``None``: an unfinished run is resumed, a finished one loaded."""
    best, last = out_dir / "best.pt", out_dir / "last.pt"
    if not (best.exists() and last.exists()):
        return None
    saved = load_checkpoint(last)
    return saved if len(saved["history"]) >= epochs else None


def _train_or_load(name: str, out_dir: Path, build, profile: Profile, objective=None, retrain: bool = False,
                   device=None, augment: bool = True, seed: int = 0, **changes) -> Run:
    """Load ``out_dir/best.pt`` of a finished run, resume an unfinished one, or train afresh."""
    config = TrainConfig.from_profile(profile, seed=seed, **changes)
    saved = None if retrain else _finished(out_dir, config.epochs)
    if saved is not None:
        changed = settings_changed(saved, config, objective)
        if changed:
            raise CheckpointError(f"{out_dir}: holds a finished run made with other settings ({'; '.join(changed)}); "
                                  f"ask for the settings it was made with, or retrain it (retrain=True, --retrain)")
        best = out_dir / "best.pt"
        return Run(load_trained(best, device or "cpu"), "checkpoint", best, None, saved["history"], saved["steps"])
    train_set, val_set = profile_datasets(profile, augment=augment)
    torch.manual_seed(seed)
    trainer = Trainer(build(), train_set, val_set, config, out_dir, objective=objective, device=device, name=name)
    result = trainer.fit(resume=not retrain)
    return Run(load_trained(result.best_path, trainer.device), "trained", result.best_path, result,
               result.history, result.steps)


def train_teacher(profile: Profile, retrain: bool = False, weights: str | Path | None = None,
                  device=None, augment: bool = True, seed: int = 0, **changes) -> Run:
    """The Polyp-PVT teacher for ``profile``: loaded if it exists, else trained.

    Args:
        profile: the profile (data, size, epochs, ...).
        retrain: train afresh even when a finished run exists. Without it, a finished run's
            ``best.pt`` is loaded and an unfinished one (``last.pt``) is resumed.
        weights: an official ``PolypPVT.pth``: loaded instead of training.
        device: see :func:`kdas_utils.engine.select_device`.
        augment: albumentations augmentation on the training set.
        seed: seeds the initial weights and the data order.
        changes: :class:`~kdas_utils.engine.TrainConfig` fields to override (e.g. ``epochs=3``).
    """
    from .models import build_teacher, load_polyp_pvt

    if weights is not None:
        model = build_teacher()
        print(load_polyp_pvt(model, weights))
        return Run(model.eval(), "weights", Path(weights), None, [], [])
    return _train_or_load("teacher", checkpoint_dir("teacher", profile), build_teacher, profile, retrain=retrain,
                          device=device, augment=augment, seed=seed, **changes)


# The arms of the ablation: KDASLoss settings, or None for the student trained alone (L_seg).
ARMS: dict[str, dict | None] = {
    "no-kd": None,                                                            # the student alone
    "at": {"at": "paper", "sgm": None},                                       # + Attention-KD
    "sgm": {"at": None, "sgm": "covariance"},                                 # + SGM
    "kdas": {"at": "paper", "sgm": "covariance"},                             # KDAS as the paper intends
    "released": {"at": "released", "sgm": "released", "seg_variant": "released"},  # the released code's terms
}


ALPHA, TAU = 0.3, 2.0  # KDAS's weights in the released code


def weights_tag(alpha: float = ALPHA, tau: float = TAU) -> str:
    """``""`` for KDAS's own ``alpha`` and ``tau``, else e.g. ``"-a0.1"`` or ``"-a0.1-t1"``: what
    tells the runs (and ablation tables) of other weights apart."""
    return (f"-a{alpha:g}" if alpha != ALPHA else "") + (f"-t{tau:g}" if tau != TAU else "")


def student_dir(profile: Profile, arm: str, seed: int, alpha: float = ALPHA, tau: float = TAU) -> Path:
    """``runs/checkpoints/student-<arm>[-a<alpha>][-t<tau>]-s<seed>-<profile>``; the weights
    appear only where they differ from KDAS's (and only for arms that use a teacher)."""
    tag = weights_tag(alpha, tau) if ARMS.get(arm) is not None else ""
    return checkpoint_dir(f"student-{arm}{tag}-s{seed}", profile)


def trained_checkpoints(profile: Profile) -> dict[str, Path]:
    """``{label: best.pt}`` of the profile's three networks of the evaluation table (teacher,
    the student trained alone, the KDAS student, seed 0), for those that exist. A run still
    training has a ``best.pt`` already: its best epoch so far."""
    candidates = {"teacher": checkpoint_dir("teacher", profile) / "best.pt",
                  "student alone": student_dir(profile, "no-kd", 0) / "best.pt",
                  "KDAS student": student_dir(profile, "kdas", 0) / "best.pt"}
    return {label: path for label, path in candidates.items() if path.exists()}


def train_student(profile: Profile, arm: str = "kdas", teacher: nn.Module | None = None, seed: int = 0,
                  retrain: bool = False, device=None, augment: bool = True, alpha: float = ALPHA, tau: float = TAU,
                  **changes) -> Run:
    """The KDAS student (PVTv2-B0) for ``profile``, distilled from ``teacher`` with the terms of
    ``arm`` (see :data:`ARMS`); loaded if a finished run exists, else trained.

    Args:
        teacher: the frozen teacher; ``None`` takes :func:`train_teacher`'s for the profile.
        arm: a key of :data:`ARMS` (``"no-kd"`` trains the student alone, without a teacher).
        alpha, tau: KDAS's weights (0.3 and 2); other values train in their own folder
            (see :func:`student_dir`).
        Others as :func:`train_teacher`.
    """
    from .distill import DistillationObjective, KDASLoss
    from .models import build_student

    if arm not in ARMS:
        raise ValueError(f"arm={arm!r}: choose one of {list(ARMS)}")
    objective = None
    if ARMS[arm] is not None:
        teacher = teacher if teacher is not None else train_teacher(profile, device=device).model
        objective = DistillationObjective(teacher, KDASLoss(alpha=alpha, tau=tau, **ARMS[arm]))
    return _train_or_load(f"student {arm}{weights_tag(alpha, tau) if objective is not None else ''} s{seed}",
                          student_dir(profile, arm, seed, alpha, tau), build_student, profile,
                          objective=objective, retrain=retrain, device=device, augment=augment, seed=seed, **changes)


def ablation_csv(profile: Profile, alpha: float = ALPHA, tau: float = TAU) -> Path:
    """``runs/ablation-<profile>[-a<alpha>][-t<tau>].csv``."""
    return runs_dir() / f"ablation-{profile.name}{weights_tag(alpha, tau)}.csv"


def run_ablation(profile: Profile, plan: dict[str, int], teacher: nn.Module | None = None, device=None,
                 csv: str | Path | None = None, alpha: float = ALPHA, tau: float = TAU, **changes) -> "pandas.DataFrame":
    """Train (or load) a student for each arm and seed of ``plan`` (``{arm: number of seeds}``)
    and score it: mean Dice at 0.5 on the validation split and on every test set.

    Seed 0 of every arm runs first, then the further seeds, so that a run cut short still covers
    every arm. Rows are appended to ``csv`` (default :func:`ablation_csv`) as they
    finish; finished runs are loaded, not retrained, so calling it again continues the plan.
    Other ``alpha`` / ``tau`` than KDAS's write their own runs and CSV (:func:`ablation_csv`).
    """
    import pandas as pd

    csv = Path(csv) if csv else ablation_csv(profile, alpha, tau)
    unknown = [arm for arm in plan if arm not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose among {list(ARMS)}")
    splits = profile_splits(profile)
    if teacher is None and any(ARMS[arm] is not None for arm in plan):
        teacher = train_teacher(profile, device=device).model
    rows = []
    for seed in range(max(plan.values(), default=0)):
        for arm, seeds in plan.items():
            if seed >= seeds:
                continue
            run = train_student(profile, arm, teacher=teacher, seed=seed, device=device, alpha=alpha, tau=tau,
                                **changes)
            row = {"arm": arm, "seed": seed, "best_epoch": max(run.history, key=lambda h: h["val_dice"])["epoch"],
                   "validation": mean_dice(run.model, splits.val, profile.image_size, device)}
            row |= {name: mean_dice(run.model, pairs, profile.image_size, device) for name, pairs in splits.test.items()}
            row["train_seconds"] = round(sum(h["seconds"] for h in run.history), 1)
            rows.append(row)
            csv.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(csv, index=False)
    return pd.DataFrame(rows)


def finished_plan(profile: Profile, alpha: float = ALPHA, tau: float = TAU) -> dict[str, int]:
    """``{arm: n}`` for the arms whose seeds ``0 .. n-1`` have all finished training (``n >= 1``)
    with these weights: the plan that scores what is done and trains nothing
    (``kdas distill --ablation finished``)."""
    epochs = TrainConfig.from_profile(profile).epochs
    plan = {}
    for arm in ARMS:
        seeds = 0
        while _finished(student_dir(profile, arm, seeds, alpha, tau), epochs) is not None:
            seeds += 1
        if seeds:
            plan[arm] = seeds
    return plan


def summarize_ablation(table: "pandas.DataFrame") -> "pandas.DataFrame":
    """Mean +- std over seeds per arm, as strings, with the number of seeds (std needs 2)."""
    scores = [c for c in table.columns if c not in ("arm", "seed", "best_epoch", "train_seconds")]
    grouped = table.groupby("arm", sort=False)[scores]
    mean, std, count = grouped.mean(), grouped.std(), grouped.size()
    out = mean.copy().astype(object)
    for column in scores:
        out[column] = [f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}" for m, s, n in zip(mean[column], std[column], count)]
    out.insert(0, "seeds", count)
    return out


def figure_samples(profile: Profile, n: int = 3, prefer_real: bool = True) -> tuple[str, list[dict]]:
    """``(source, items)``: ``n`` evenly spaced evaluation items for figures, at the profile's
    size: from the real Kvasir test set when it is there (and ``prefer_real``), else from the
    profile's first test set."""
    real = data_root() / "TestDataset" / "Kvasir"
    if prefer_real and (real / "images").is_dir():
        source, pairs = "Kvasir (real)", find_pairs(real)
    else:
        source, pairs = next(iter(profile_splits(profile).test.items()))
    dataset = PolypDataset(pairs, eval_transforms(profile.image_size))
    picks = [round(i * (len(dataset) - 1) / max(n - 1, 1)) for i in range(n)]
    return source, [dataset[i] for i in picks]


def mean_dice(model: nn.Module, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8) -> float:
    """Mean over images of Dice at 0.5, predicted at ``image_size`` and compared at each mask's
    own size (the full PraNet-protocol metrics are in :mod:`kdas_utils.metrics`)."""
    from .data import read_mask
    from .engine import dice_per_image
    from .evaluate import logits_at_mask_size

    scores = [dice_per_image(logits.cpu(), torch.from_numpy(read_mask(mask_path)).float()[None, None]).item()
              for (_, mask_path), logits in zip(pairs, logits_at_mask_size(model, pairs, image_size, device, batch_size))]
    return sum(scores) / len(scores)


@torch.inference_mode()
def predict_samples(model: nn.Module, dataset: PolypDataset, indices: list[int], device=None) -> list[dict]:
    """Predictions on some items of an evaluation dataset, for figures: dicts with ``name``,
    ``image`` ``(H, W, 3) uint8``, ``mask`` ``(H, W)`` {0, 1}, ``probability`` ``(H, W)`` and ``dice``."""
    from .data import denormalize
    from .engine import dice_per_image, select_device

    device = select_device(device)
    model = model.to(device).eval()
    samples = []
    for index in indices:
        item = dataset[index]
        logits = model(item["image"][None].to(device)).logits.float().cpu()
        samples.append({
            "name": item["name"], "image": denormalize(item["image"]),
            "mask": item["mask"][0].numpy().astype(np.uint8), "probability": torch.sigmoid(logits)[0, 0].numpy(),
            "dice": dice_per_image(logits, item["mask"][None]).item(),
        })
    return samples


def _teacher_summary(profile: Profile, run: Run, device) -> dict:
    splits = profile_splits(profile)
    return {
        "profile": profile.name, "image_size": profile.image_size, "epochs": len(run.history),
        "best_epoch": max(run.history, key=lambda h: h["val_dice"])["epoch"] if run.history else None,
        "val_mean_dice": mean_dice(run.model, splits.val, profile.image_size, device),
        "test_mean_dice": {name: mean_dice(run.model, pairs, profile.image_size, device)
                           for name, pairs in splits.test.items()},
        "train_seconds": round(sum(h["seconds"] for h in run.history), 1),
        "torch": torch.__version__, "device": str(next(run.model.parameters()).device),
    }


def _plan(text: str) -> dict[str, int]:
    plan = {}
    for item in filter(None, text.split(",")):
        arm, _, count = item.partition("=")
        if arm not in ARMS or not count.isdigit():
            raise ValueError(f"plan item {item!r}: write ARM=SEEDS with ARM among {list(ARMS)}, e.g. kdas=3, "
                             f"or 'finished' for the runs already trained")
        plan[arm] = int(count)
    return plan


def main(argv: list[str] | None = None) -> int:
    """``python -m kdas_utils.training teacher|ablation --profile standard``: train (or resume)
    the teacher, or run the distillation ablation, and save the scores under ``runs/``."""
    import argparse
    import json

    from .config import get_profile

    parser = argparse.ArgumentParser(description="Train the teacher or run the KDAS ablation for a profile "
                                                 "(finished runs are loaded, unfinished ones resumed).")
    parser.add_argument("task", choices=("teacher", "ablation"), help="what to run")
    parser.add_argument("--profile", default=None, help="quick | standard | paper (default: $KDAS_PROFILE)")
    parser.add_argument("--retrain", action="store_true", help="teacher: start afresh even if a finished run exists")
    parser.add_argument("--plan", default="no-kd=3,kdas=3,at=1,sgm=1,released=1",
                        help="ablation: ARM=SEEDS items (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cuda | mps | cpu (default: the best available)")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.task == "teacher":
        run = train_teacher(profile, retrain=args.retrain, device=args.device)
        summary = _teacher_summary(profile, run, args.device)
        out = checkpoint_dir("teacher", profile) / "summary.json"
        out.write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    else:
        try:
            plan = _plan(args.plan)
        except ValueError as error:
            parser.error(str(error))
        table = run_ablation(profile, plan, device=args.device)
        print(summarize_ablation(table).to_string())
        out = ablation_csv(profile)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
