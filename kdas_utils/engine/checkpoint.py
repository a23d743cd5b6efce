"""Checkpoints that survive a crash: atomic writes, the RNG states, and the check that a
checkpoint fits the run that wants to resume it (or to take it as finished)."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .objectives import SegmentationObjective, objective_settings

CHECKPOINT_FORMAT = "kdas-checkpoint/1"

# Settings that must be those of a checkpoint to resume it or to take it as the finished run.
MUST_MATCH = (
    "batch_size",
    "image_size",
    "seed",
    "multi_scale",
    "scales",
    "max_steps_per_epoch",
    "drop_path_rate",
    "label_fraction",
)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the step and the batch."""


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or does not fit the run."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a ``.part`` file, flushed to disk, then
    renamed over ``path``. An interrupted write leaves the old file untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by the engine (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train first or check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({error}); delete it and train again") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a KDAS engine checkpoint "
            f"(format {state.get('format') if isinstance(state, dict) else None!r}, "
            f"expected {CHECKPOINT_FORMAT!r}); official PolypPVT.pth files load with "
            f"kdas_utils.models.load_polyp_pvt"
        )
    return state


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def architecture(model: nn.Module) -> dict:
    """What is needed to rebuild the network (see :func:`kdas_utils.models.load_trained`)."""
    return {
        "backbone": getattr(model, "backbone_name", None),
        "channels": getattr(model, "channels", None),
        "drop_path_rate": getattr(model, "drop_path_rate", None),
        "weights_source": getattr(model, "weights_source", None),  # where the starting weights came from
    }


def settings_changed(state: dict, config: TrainConfig, objective=None) -> list[str]:
    """``"<name>: <saved> there, <asked> here"`` for every setting of the checkpoint ``state``
    that differs from ``config`` (the fields of :data:`MUST_MATCH`) or from ``objective``'s
    :func:`objective_settings` (``None`` is the default :class:`SegmentationObjective`).
    Checkpoints older than the objective record are compared on ``config`` only; a field that
    a checkpoint predates (e.g. ``label_fraction``) counts as its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    saved = {k: state["config"].get(k, defaults[k]) for k in MUST_MATCH}
    changed = [
        f"{k}: {saved[k]} there, {getattr(config, k)} here"
        for k in MUST_MATCH
        if tuple(np.atleast_1d(saved[k])) != tuple(np.atleast_1d(getattr(config, k)))
    ]
    if "objective_settings" in state:
        there = state["objective_settings"] or {}
        asked = objective_settings(objective if objective is not None else SegmentationObjective()) or {}
        changed += [
            f"objective {k}: {there.get(k)} there, {asked.get(k)} here"
            for k in dict.fromkeys([*asked, *there])
            if there.get(k) != asked.get(k)
        ]
    return changed
