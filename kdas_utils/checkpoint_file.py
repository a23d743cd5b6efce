"""The engine's checkpoint file, as every floor reads it: its format tag, an atomic write and a
checked read. It sits below the models and the engine, so that :func:`kdas_utils.models.load_trained`
can read a ``best.pt`` without importing the training engine (which re-exports all four names)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import KDASError
from .files import atomic_path

CHECKPOINT_FORMAT = "kdas-checkpoint/1"


class CheckpointError(KDASError, RuntimeError):
    """A checkpoint file cannot be read or does not fit the run."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a ``.part`` file, flushed to disk, then
    renamed over ``path``. An interrupted write leaves the old file untouched."""
    path = Path(path)
    with atomic_path(path) as partial, open(partial, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
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
