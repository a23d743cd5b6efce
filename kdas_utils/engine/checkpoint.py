"""Checkpoints that survive a crash: the RNG states, and the check that a checkpoint fits the run
that wants to resume it (or to take it as finished). The file itself (atomic write, checked read)
is :mod:`kdas_utils.files`."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch
from torch import nn

from ..errors import KDASError
from ..files import (  # noqa: F401 (the file format, re-exported here for the engine's callers)
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from ..kdas.objective import SegmentationObjective, objective_settings
from .train_config import TrainConfig

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
    "lr",
)


class NonFiniteLossError(KDASError, FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the step and the batch."""


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
