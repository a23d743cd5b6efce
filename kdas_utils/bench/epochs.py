"""What whole epochs cost and whether the results move: today's path against the new one
(:mod:`kdas_utils.speed`), the recipes' epochs, the results check, the int8 teacher check, the
notebooks' times."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from .. import speed
from ..config import get_profile, project_root
from ..engine import (
    TrainConfig,
    Trainer,
    int8_teacher,
    select_device,
)
from ..kdas import ARMS, DistillationObjective, KDASLoss, SegmentationObjective
from ..metrics import dice_at
from ..models import build_student, build_teacher, load_trained
from ..runs import profile_datasets
from ..tutorial import run_notebooks


def int8_check(teacher_path: str | Path, profile="standard", batch_size: int = 8, bf16: bool = False) -> dict:
    """The int8 teacher (:func:`~kdas_utils.engine.int8_teacher`) against the fp32 one on
    the validation split of ``profile``: each one's mean Dice at 0.5, their difference, the relative
    L2 error of every distillation target (``|int8 - fp32| / |fp32|`` per batch; max and mean) and
    the seconds of each forward over the split. With ``bf16``, also the fp32 teacher under bf16
    autocast (the teacher of a bf16 run without ``--teacher-int8``) against the fp32 one:
    ``val_dice_bf16``, ``val_dice_difference_bf16``, ``target_relative_error_bf16``, and
    ``forward_speedup_int8_over_bf16``. The int8 teacher itself never runs under autocast (its quantised
    layers take fp32; :class:`~kdas_utils.engine.Int8Teacher` turns autocast off
    around them), so its numbers are the same in a bf16 run."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    _, val_set = profile_datasets(profile)
    fp32 = load_trained(teacher_path, "cpu").eval()
    int8 = int8_teacher(fp32)
    variants = {"fp32": (fp32, False), "int8": (int8, False)}
    if bf16:
        variants["bf16"] = (fp32, True)
    dice, seconds = {name: [] for name in variants}, dict.fromkeys(variants, 0.0)
    errors = {name: {} for name in variants if name != "fp32"}
    with torch.inference_mode():
        for batch in torch.utils.data.DataLoader(val_set, batch_size=batch_size):
            outs = {}
            for name, (net, amp) in variants.items():
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    outs[name] = net(batch["image"])
                seconds[name] += time.perf_counter() - start
                dice[name].append(dice_at(torch.sigmoid(outs[name].logits.float()), batch["mask"]))
            a = outs["fp32"]
            for name, found in errors.items():
                b = outs[name]
                targets = {n: (getattr(a, n), getattr(b, n)) for n in ("p1", "p2", "cim", "cfm", "sam")}
                targets |= {f"stage{i + 1}": pair for i, pair in enumerate(zip(a.stages, b.stages))}
                for n, (x, y) in targets.items():
                    found.setdefault(n, []).append(((y.float() - x).norm() / x.norm()).item())
    means = {name: torch.cat(d).mean().item() for name, d in dice.items()}
    summary = {
        name: {n: {"max": max(e), "mean": sum(e) / len(e)} for n, e in found.items()} for name, found in errors.items()
    }
    report = {
        "teacher": str(teacher_path),
        "profile": profile.name,
        "frames": len(val_set),
        "val_dice_fp32": means["fp32"],
        "val_dice_int8": means["int8"],
        "val_dice_difference": means["int8"] - means["fp32"],
        "target_relative_error": summary["int8"],
        "forward_seconds": seconds,
        "forward_speedup": seconds["fp32"] / seconds["int8"],
        "threads": torch.get_num_threads(),
    }
    if bf16:
        report["val_dice_bf16"] = means["bf16"]
        report["val_dice_difference_bf16"] = means["bf16"] - means["fp32"]
        report["target_relative_error_bf16"] = summary["bf16"]
        report["forward_speedup_int8_over_bf16"] = seconds["bf16"] / seconds["int8"]
    return report


def warm_datasets(profile) -> tuple:
    """``(train_set, val_set)`` of ``profile`` with every frame decoded into their caches, so that
    no timed epoch pays the decoding (the datasets are shared by every trainer of a measurement)."""
    sets = profile_datasets(profile)
    for dataset in sets:
        for i in range(len(dataset)):
            dataset[i]
    return sets


def epoch_trainer(
    role: str, profile, sets, folder, seed: int = 0, device=None, teacher_int8: bool = False, **changes
) -> Trainer:
    """A :class:`Trainer` of one role of ``profile`` on ``sets`` (:func:`warm_datasets`): the teacher
    (L_seg) or the KDAS student taught by a teacher of random weights (the time does not depend on
    them), in int8 with ``teacher_int8``."""
    config = TrainConfig.from_profile(profile, seed=seed, progress=False, **changes)
    train_set, val_set = sets
    torch.manual_seed(seed)
    if role == "teacher":
        model, objective = build_teacher(drop_path_rate=config.drop_path_rate), SegmentationObjective()
    else:
        teacher = build_teacher(drop_path_rate=config.drop_path_rate)
        torch.manual_seed(seed)
        model = build_student(drop_path_rate=config.drop_path_rate)
        objective = DistillationObjective(int8_teacher(teacher) if teacher_int8 else teacher, KDASLoss(**ARMS["kdas"]))
    return Trainer(model, train_set, val_set, config, folder, objective=objective, device=device, name=role)


def timed_fit(role: str, profile, sets, path: speed.SpeedPath = speed.NEW, **changes):
    """A fresh :func:`epoch_trainer` trained under the speed ``path`` in a temporary folder:
    ``(trainer, its fit's result, the fit's wall seconds)``; ``changes`` go to :func:`epoch_trainer`."""
    cpu = select_device(changes.get("device")).type == "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        trainer = epoch_trainer(role, profile, sets, tmp, **(path.changes(cpu) | changes))
        start = time.perf_counter()
        result = trainer.fit(resume=False)
        return trainer, result, time.perf_counter() - start


def epoch_times(profile="standard", max_steps: int | None = None, device=None, **changes) -> dict:
    """Wall seconds of one training epoch (steps, validation, checkpoint) of the teacher and of the
    KDAS student of ``profile`` (a name or a :class:`~kdas_utils.config.Profile`), on today's path
    (:data:`kdas_utils.speed.BASELINE`) and on the new one, in the same run:
    ``{role: {"baseline": {...}, "new": {...}, "speedup": x}}``.
    ``max_steps`` caps the steps (a shorter estimate; the validation stays whole); ``changes``:
    further :class:`TrainConfig` fields (the smoke test's small size)."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    out = {"profile": profile.name, "max_steps": max_steps}
    cpu = select_device(device).type == "cpu"
    sets = warm_datasets(profile)
    for role in ("teacher", "student"):
        out[role] = {}
        paths = [("baseline", speed.BASELINE, False), ("new", speed.NEW, False)]
        paths += [("new_int8_teacher", speed.NEW, True)] if role == "student" and cpu else []
        for label, path, int8 in paths:
            print(f"  one {profile.name} {role} epoch, {label} path ...", flush=True)
            trainer, _, wall = timed_fit(
                role,
                profile,
                sets,
                path,
                device=device,
                teacher_int8=int8,
                epochs=1,
                max_steps_per_epoch=max_steps,
                **changes,
            )
            epoch = trainer.history[0]
            out[role][label] = {
                "epoch_s": wall,
                "train_s": epoch["seconds"],
                "steps": trainer.steps_per_epoch,
                "val_dice": epoch["val_dice"],
                "precision": trainer.precision.name,
            }
        out[role]["speedup"] = out[role]["baseline"]["epoch_s"] / out[role]["new"]["epoch_s"]
        if "new_int8_teacher" in out[role]:
            out[role]["speedup_int8_teacher"] = (
                out[role]["baseline"]["epoch_s"] / out[role]["new_int8_teacher"]["epoch_s"]
            )
    return out


RECIPES = ("standard", "colab", "paper")  # the profiles on the real frames, smallest first


def recipe_epochs(names=RECIPES, max_steps: int | None = None, device=None, **changes) -> dict:
    """What a whole run of each profile in ``names`` costs here: two epochs of its teacher and of its
    KDAS student on the new path (the second epoch without the first's warm-up: cuDNN's choice of
    kernels, the workers' start), and that pace times the profile's epochs. The weights are random
    (the time does not depend on them, and the ImageNet backbones of ``colab`` and ``paper`` cannot be
    had everywhere). ``{name: {"teacher": {...}, "student": {...}, "teacher_run_min", "student_run_min"}}``;
    each role's ``epoch_s`` is one epoch's wall seconds (steps, validation, checkpoint) after the
    warm-up, ``images_per_s`` its training frames per second."""
    out = {}
    for name in names:
        profile = get_profile(name)
        sets = warm_datasets(profile)
        row = {
            "image_size": profile.image_size,
            "batch_size": profile.batch_size,
            "multi_scale": profile.multi_scale,
            "num_workers": profile.num_workers,
            "max_steps": max_steps,
        }
        for role in ("teacher", "student"):
            print(f"  two {name} {role} epochs ...", flush=True)
            trainer, _, wall = timed_fit(
                role, profile, sets, device=device, epochs=2, max_steps_per_epoch=max_steps, **changes
            )
            first, second = (h["seconds"] for h in trainer.history)
            row[role] = {
                "epoch_s": (wall - (first - second)) / 2,
                "first_epoch_train_s": first,
                "train_s": second,
                "steps": trainer.steps_per_epoch,
                "images_per_s": trainer.steps_per_epoch * len(trainer.config.sizes()) * profile.batch_size / second,
                "precision": trainer.precision.name,
            }
        trains_teacher = profile.official_teacher != "official"  # colab always distils from the official one
        row["teacher_run_min"] = profile.teacher_epochs * row["teacher"]["epoch_s"] / 60 if trains_teacher else None
        row["student_run_min"] = profile.epochs * row["student"]["epoch_s"] / 60
        out[name] = row
    return out


ROUNDING = 1e-4  # a Dice this close to the spread's end counts as inside it (the paths differ by rounding)


def results_check(profile="standard", epochs: int = 3, seeds: int = 2, device=None, **changes) -> dict:
    """Do the results move? The KDAS student of ``profile`` trained ``epochs`` epochs on today's path
    and on the new one, each with seeds ``0 .. seeds-1``: the best validation Dice of each run, whether
    the new seed-0 run lies within today's seed spread (``[min, max]``, to :data:`ROUNDING`;
    ``within_spread``), whether the new path's mean does (``mean_within_spread``), and the
    differences from today's same-seed run and mean. The teacher is one of random weights drawn from
    the seed (the same on both paths): the check asks whether the code computes the same, not how good
    a student gets. Where a speed-up changes the numbers (bf16, :mod:`kdas_utils.speed`), the same seed
    no longer gives the same run, and only the spread can answer."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    runs, sets = [], warm_datasets(profile)
    plan = [("baseline", speed.BASELINE, s) for s in range(seeds)] + [("new", speed.NEW, s) for s in range(seeds)]
    for label, path, seed in plan:
        print(f"  {profile.name} KDAS student, {epochs} epochs, {label} path, seed {seed} ...", flush=True)
        trainer, result, seconds = timed_fit(
            "student", profile, sets, path, seed=seed, device=device, epochs=epochs, **changes
        )
        runs.append(
            {
                "path": label,
                "seed": seed,
                "val_dice": [h["val_dice"] for h in result.history],
                "best_val_dice": result.best_val_dice,
                "precision": trainer.precision.name,
                "seconds": seconds,
            }
        )
    old = [r["best_val_dice"] for r in runs if r["path"] == "baseline"]
    new = [r["best_val_dice"] for r in runs if r["path"] == "new"]
    old_mean, new_mean = sum(old) / len(old), sum(new) / len(new)
    return {
        "profile": profile.name,
        "epochs": epochs,
        "runs": runs,
        "baseline_spread": [min(old), max(old)],
        "new_spread": [min(new), max(new)],
        "new_minus_same_seed_baseline": new[0] - old[0],
        "new_mean_minus_baseline_mean": new_mean - old_mean,
        "within_spread": min(old) - ROUNDING <= new[0] <= max(old) + ROUNDING,
        "mean_within_spread": min(old) - ROUNDING <= new_mean <= max(old) + ROUNDING,
    }


def notebooks_quick(out: Path) -> dict:
    """Wall time of every notebook in the quick profile (a fresh runs folder, so all train)."""
    os.environ["KDAS_PROFILE"] = "quick"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KDAS_RUNS_DIR"] = tmp
        times = run_notebooks(sorted((project_root() / "notebooks").glob("*.ipynb")), Path(tmp))
    return times
