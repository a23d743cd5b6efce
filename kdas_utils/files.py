"""Files written whole or not at all: the one atomic write of the package.

Every file a reader may open while it is being written (checkpoints, tables, summaries, images, exported
models) goes first to a temporary name beside it, then is renamed over it: a rename within a folder is
atomic, so the final name holds the old file or the new one, never half of either. It sits on the lowest
floor (it imports nothing of the package)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


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
