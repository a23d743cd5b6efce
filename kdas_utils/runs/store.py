"""The run store: where each run lives, whether it has finished, and the one function that loads a
finished run, resumes an unfinished one or trains it (:func:`train_or_load`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Profile, runs_dir
from ..engine import CheckpointError, TrainConfig, Trainer, load_checkpoint, settings_changed
from ..files import atomic_path
from ..models import load_trained
from .share import holding, sharing
from .splits import profile_datasets


def checkpoint_dir(role: str, profile: Profile) -> Path:
    """``runs/checkpoints/<role>-<profile>``, e.g. ``runs/checkpoints/teacher-quick``."""
    return runs_dir() / "checkpoints" / f"{role}-{profile.name}"


def teacher_dir(profile: Profile, label_fraction: float = 1.0, seed: int = 0) -> Path:
    """The folder of a teacher run: ``teacher-<profile>`` for the profile's teacher (every mask, seed 0),
    ``teacher-s<seed>-<profile>`` for another seed, and ``teacher-l<fraction>-s<seed>-<profile>`` for one
    that saw the masks of ``label_fraction`` of the training frames only, those drawn from ``seed`` (the
    masks a student of the same seed sees), e.g. ``teacher-l0.25-s1-standard``."""
    if label_fraction == 1:
        return checkpoint_dir("teacher" + (f"-s{seed}" if seed else ""), profile)
    return checkpoint_dir(f"teacher-l{label_fraction:g}-s{seed}", profile)


@dataclass
class Run:
    """What :func:`train_teacher` and :func:`train_student` return.

    Attributes:
        model: the selected network, in ``eval()`` mode.
        source: ``"trained"`` (in this call), ``"checkpoint"`` (an earlier run's ``best.pt``) or
            ``"weights"`` (an official ``PolypPVT.pth``).
        path: the file the weights now come from.
        history: the epoch history (empty for ``weights``).
        steps: the step history, likewise.
    """

    model: nn.Module
    source: str
    path: Path
    history: list[dict]
    steps: list[dict]


def finished_state(out_dir: Path, epochs: int) -> dict | None:
    """``last.pt``'s state if ``out_dir`` holds a run that trained all ``epochs`` (and its
    ``best.pt``), else ``None``: an unfinished run is resumed, a finished one loaded."""
    best, last = out_dir / "best.pt", out_dir / "last.pt"
    if not (best.exists() and last.exists()):
        return None
    saved = load_checkpoint(last)
    return saved if len(saved["history"]) >= epochs else None


def load_finished(out_dir: Path, saved: dict, config: TrainConfig, objective, device) -> Run:
    """The :class:`Run` of the finished run in ``out_dir`` (``saved``: its ``last.pt`` state), if it was
    made with the settings asked for."""
    changed = settings_changed(saved, config, objective)
    if changed:
        raise CheckpointError(
            f"{out_dir}: holds a finished run made with other settings ({'; '.join(changed)}); "
            f"ask for the settings it was made with, or retrain it (retrain=True, --retrain)"
        )
    best = out_dir / "best.pt"
    return Run(load_trained(best, device or "cpu"), "checkpoint", best, saved["history"], saved["steps"])


def train_or_load(
    name: str,
    out_dir: Path,
    build,
    profile: Profile,
    objective=None,
    retrain: bool = False,
    device=None,
    augment: bool = True,
    seed: int = 0,
    when_busy: str | None = None,
    **changes,
) -> Run:
    """Load ``out_dir/best.pt`` of a finished run, resume an unfinished one, or train afresh.
    ``when_busy``: what to do when another live process holds ``out_dir`` (see :func:`holding`);
    default ``"wait"`` inside :func:`share_runs`, else ``"raise"``."""
    when_busy = when_busy or ("wait" if sharing() else "raise")
    if when_busy not in ("raise", "skip", "wait"):
        raise ValueError(f"when_busy={when_busy!r}: choose 'raise', 'skip' or 'wait'")
    if retrain and when_busy != "raise":
        raise ValueError(f"{out_dir}: retrain while other processes share the runs would train it twice")
    config = TrainConfig.from_profile(profile, seed=seed, **changes)
    saved = None if retrain else finished_state(out_dir, config.epochs)
    if saved is not None:
        return load_finished(out_dir, saved, config, objective, device)
    # One process per run folder, taken before any work (kdas_utils.engine.lock); under torchrun only
    # process 0 writes the folder, so only it holds it.
    main_process = int(os.environ.get("RANK", "0")) == 0
    with holding(out_dir, when_busy) if main_process else contextlib.nullcontext():
        saved = None if retrain else finished_state(out_dir, config.epochs)
        if saved is not None:  # another process finished it while this one waited
            return load_finished(out_dir, saved, config, objective, device)
        print(plan_line(name, out_dir, profile, config, resume=not retrain), flush=True)
        train_set, val_set = profile_datasets(profile, augment=augment)
        torch.manual_seed(seed)
        model = build(drop_path_rate=config.drop_path_rate, pretrained=profile.pretrained)
        print(f"{name}: backbone from {model.weights_source}")
        trainer = Trainer(
            model,
            train_set,
            val_set,
            config,
            out_dir,
            objective=objective,
            device=device,
            name=name,
        )
        result = trainer.fit(resume=not retrain)
    return Run(
        load_trained(result.best_path, trainer.device), "trained", result.best_path, result.history, result.steps
    )


def last_state(folder: Path) -> dict | None:
    """``folder/last.pt``'s state, or ``None`` if there is none or it cannot be read."""
    try:
        return load_checkpoint(folder / "last.pt")
    except CheckpointError:
        return None


def epoch_seconds(out_dir: Path, image_size: int, own: dict | None = None) -> float | None:
    """The median seconds of one epoch measured by earlier runs of this kind: the run in ``out_dir``
    itself if it has started, else the runs of the same role, arm and settings with another seed
    under ``out_dir``'s parent at ``image_size`` (their ``last.pt`` histories). ``None`` if nothing
    was measured here yet. ``own``: ``out_dir/last.pt``'s state when the caller has read it already."""
    kind = re.sub(r"-s\d+-", "-s*-", out_dir.name)  # the same role, arm and settings, any seed
    folders = [out_dir] + sorted(out_dir.parent.glob(kind))
    for folder in dict.fromkeys(folders):
        state = own if folder == out_dir and own is not None else last_state(folder)
        if state is None:
            continue
        seconds = [h["seconds"] for h in state["history"] if "seconds" in h]
        if seconds and state["config"].get("image_size") == image_size:
            return statistics.median(seconds)
    return None


def plan_line(name: str, out_dir: Path, profile: Profile, config: TrainConfig, resume: bool = True) -> str:
    """What is about to be trained, said before it starts: ``"teacher: training 8 epochs (quick
    profile, 128 px) into runs/checkpoints/teacher-quick; about 2 minutes"``. The time comes from
    :func:`epoch_seconds`; without a measurement yet, the epoch log lines give it. ``resume=False``
    (a retrain) starts at epoch 1 whatever ``last.pt`` holds."""
    state = last_state(out_dir)
    done = len(state["history"]) if state is not None and resume else 0
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    verb = f"resuming at epoch {done + 1} of {config.epochs}" if done else f"training {epochs}"
    seconds = epoch_seconds(out_dir, config.image_size, own=state)
    when = (
        f"about {config.minutes_left(seconds, done)} minutes, as measured by earlier epochs here"
        if seconds
        else "each epoch's time is printed as it ends"
    )
    return (
        f"{name}: {verb} ({profile.name} profile, {config.image_size} px) into {out_dir.parent.name}/{out_dir.name}; "
        f"{when}"
    )


def start_from_shorter(out_dir: Path, base_dir: Path, changes: dict) -> None:
    """A longer schedule (its own folder) starts from the profile's run of the same settings, if
    that exists: the data order is a function of (seed, epoch, sample) and the learning rate is
    constant, so its first epochs are exactly the shorter run's. Nothing is done for a cosine
    schedule, or when the longer run has started already."""
    if out_dir == base_dir or (out_dir / "last.pt").exists() or changes.get("schedule", "constant") != "constant":
        return
    if (base_dir / "last.pt").exists() and (base_dir / "best.pt").exists():
        for name in ("best.pt", "last.pt"):  # last.pt last: it is what marks the run as started
            with atomic_path(out_dir / name) as partial:
                shutil.copy2(base_dir / name, partial)


def teacher_snapshot(profile: Profile, epoch: int) -> Path:
    """``epoch-<n>.pt`` of the profile's teacher run (kept for :attr:`Profile.keep_epochs`)."""
    path = checkpoint_dir("teacher", profile) / f"epoch-{epoch}.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no teacher snapshot of epoch {epoch}; the {profile.name!r} profile keeps "
            f"epochs {list(profile.keep_epochs)} while the teacher trains (kdas train-teacher)"
        )
    return path
