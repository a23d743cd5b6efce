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
from .data import DatasetError, PolypDataset, eval_transforms, find_dataset, make_synthetic, train_transforms, train_val_split
from .data.pairs import Pair
from .engine import TrainConfig, Trainer, TrainResult, load_checkpoint, load_trained

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


def profile_datasets(profile: Profile, augment: bool = True, splits: Splits | None = None):
    """``(train_set, val_set)`` at the profile's image size; augmentation on the first only."""
    splits = splits or profile_splits(profile)
    return (PolypDataset(splits.train, train_transforms(profile.image_size, augment=augment)),
            PolypDataset(splits.val, eval_transforms(profile.image_size)))


def checkpoint_dir(role: str, profile: Profile) -> Path:
    """``runs/checkpoints/<role>-<profile>``, e.g. ``runs/checkpoints/teacher-quick``."""
    return runs_dir() / "checkpoints" / f"{role}-{profile.name}"


@dataclass
class TeacherRun:
    """What :func:`train_teacher` returns.

    Attributes:
        model: the teacher, in ``eval()`` mode.
        source: ``"trained"``, ``"checkpoint"`` (an earlier run's ``best.pt``) or ``"weights"``
            (an official ``PolypPVT.pth``).
        path: the file the weights now come from.
        result: the training record (``None`` when nothing was trained in this call; the
            history of a loaded checkpoint is in ``history``).
        history: the epoch history, also for a loaded engine checkpoint (empty for ``weights``).
        steps: the step history, likewise.
    """

    model: nn.Module
    source: str
    path: Path
    result: TrainResult | None
    history: list[dict]
    steps: list[dict]


def train_teacher(profile: Profile, retrain: bool = False, weights: str | Path | None = None,
                  device=None, augment: bool = True, seed: int = 0, **changes) -> TeacherRun:
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
        return TeacherRun(model.eval(), "weights", Path(weights), None, [], [])
    out_dir = checkpoint_dir("teacher", profile)
    best, last = out_dir / "best.pt", out_dir / "last.pt"
    config = TrainConfig.from_profile(profile, seed=seed, **changes)
    if best.exists() and not retrain:
        saved = load_checkpoint(last) if last.exists() else {"history": [], "steps": []}
        if len(saved["history"]) >= config.epochs:  # finished (an unfinished run is resumed below)
            return TeacherRun(load_trained(best, device or "cpu"), "checkpoint", best, None, saved["history"], saved["steps"])
    train_set, val_set = profile_datasets(profile, augment=augment)
    torch.manual_seed(seed)
    trainer = Trainer(build_teacher(), train_set, val_set, config, out_dir, device=device, name="teacher")
    result = trainer.fit(resume=not retrain)
    return TeacherRun(load_trained(result.best_path, trainer.device), "trained", result.best_path, result,
                      result.history, result.steps)


@torch.inference_mode()
def mean_dice(model: nn.Module, pairs: list[Pair], image_size: int, device=None, batch_size: int = 8) -> float:
    """Mean over images of Dice at 0.5, predicted at ``image_size`` and compared at each mask's
    own size (the full PraNet-protocol metrics are in :mod:`kdas_utils.metrics`)."""
    import torch.nn.functional as F

    from .data import read_mask
    from .engine import dice_per_image, select_device

    device = select_device(device)
    model = model.to(device).eval()
    loader = torch.utils.data.DataLoader(PolypDataset(pairs, eval_transforms(image_size)), batch_size=batch_size)
    scores, index = [], 0
    for batch in loader:
        logits = model(batch["image"].to(device)).logits.float().cpu()
        for row in logits:
            mask = torch.from_numpy(read_mask(pairs[index][1])).float()[None, None]
            full = F.interpolate(row[None], size=mask.shape[-2:], mode="bilinear", align_corners=False)
            scores.append(dice_per_image(full, mask).item())
            index += 1
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


def main(argv: list[str] | None = None) -> int:
    """``python -m kdas_utils.training [--profile standard] [--retrain]``: train (or resume) the
    teacher of a profile, then print and save its validation and test mean Dice."""
    import argparse
    import json

    from .config import get_profile

    parser = argparse.ArgumentParser(description="Train (or resume) the Polyp-PVT teacher of a profile.")
    parser.add_argument("--profile", default=None, help="quick | standard | paper (default: $KDAS_PROFILE)")
    parser.add_argument("--retrain", action="store_true", help="start afresh even if a finished run exists")
    parser.add_argument("--device", default=None, help="cuda | mps | cpu (default: the best available)")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    run = train_teacher(profile, retrain=args.retrain, device=args.device)
    splits = profile_splits(profile)
    summary = {
        "profile": profile.name, "image_size": profile.image_size, "epochs": len(run.history),
        "best_epoch": max(run.history, key=lambda h: h["val_dice"])["epoch"] if run.history else None,
        "val_mean_dice": mean_dice(run.model, splits.val, profile.image_size, args.device),
        "test_mean_dice": {name: mean_dice(run.model, pairs, profile.image_size, args.device)
                           for name, pairs in splits.test.items()},
        "train_seconds": round(sum(h["seconds"] for h in run.history), 1),
        "torch": torch.__version__, "device": str(next(run.model.parameters()).device),
    }
    out = checkpoint_dir("teacher", profile) / "summary.json"
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
