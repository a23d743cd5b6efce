"""Files written whole or not at all: the one atomic write of the package, and the checkpoint file.

Every file a reader may open while it is being written (checkpoints, tables, summaries, images, exported
models) goes first to a temporary name beside it, then is renamed over it: a rename within a folder is
atomic, so the final name holds the old file or the new one, never half of either.

The engine's checkpoint file is read here too (its format tag, an atomic write and a checked read), so
that :func:`kdas_utils.models.load_trained` can read a ``best.pt`` without importing the training engine
(which re-exports the four names; the training state it holds is :mod:`kdas_utils.engine.checkpoint`).
It sits on the lowest floor (it imports nothing of the package but its errors)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from .errors import KDASError


@contextlib.contextmanager
def atomic_path(path: str | Path, per_process: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (``<name>.part``; with ``per_process``, ``<name>.<pid>.part``, for
    files several processes write) for the block to write; renamed over ``path`` when the block ends, removed
    when it raises. The folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part" if per_process else f"{path.name}.part")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """``text`` to ``path``, atomically (:func:`atomic_path`)."""
    with atomic_path(path) as partial:
        partial.write_text(text)
    return Path(path)


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
