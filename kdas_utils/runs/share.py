"""Several processes working through the same runs at once (``kdas study --jobs``): one process per
run folder (:class:`~kdas_utils.engine.RunLock`), the others skip it or wait for it."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ..engine import RunLock, RunLockedError
from ..engine.lock import LOCK_NAME, describe_holder, read_lock

WAIT_SECONDS = 10.0  # how often a process waiting for a run folder that another one holds looks again
_sharing = False


@contextlib.contextmanager
def share_runs():
    """Work through the same runs as other processes at once (what ``kdas study --jobs`` starts: each
    process runs the same study). Inside the block, a run folder that another live process holds is
    not an error: :func:`run_ablation` first trains the runs that nobody holds and leaves the others
    to their holders (:func:`claim_runs`), then waits for those and loads them; a teacher, needed at
    once, is waited for. So each run is trained by one process, and every process ends with every
    row. This is the series' choice (two runs on one core each train more steps an hour than one run
    on both: ``benchmarks/threads.py``, docs/results.md)."""
    global _sharing
    before, _sharing = _sharing, True
    try:
        yield
    finally:
        _sharing = before


def sharing() -> bool:
    """Whether this process is inside :func:`share_runs`."""
    return _sharing


class Busy(Exception):
    """A run folder that another process holds, left to it (``when_busy="skip"``)."""


@contextlib.contextmanager
def holding(out_dir: Path, when_busy: str):
    """Hold ``out_dir`` (:class:`~kdas_utils.engine.RunLock`) for the block. When another live process
    holds it: ``"raise"`` its :class:`~kdas_utils.engine.RunLockedError`, ``"skip"`` raise
    :class:`Busy`, ``"wait"`` look again every :data:`WAIT_SECONDS` until it is free."""
    waiting = False
    while True:
        try:
            lock = RunLock(out_dir).acquire()
            break
        except RunLockedError as error:
            if when_busy == "raise":
                raise
            if when_busy == "skip":
                raise Busy(out_dir) from error
            if not waiting:
                holder = describe_holder(read_lock(out_dir / LOCK_NAME))
                print(f"waiting for {out_dir}, which another process trains ({holder})", flush=True)
                waiting = True
            time.sleep(WAIT_SECONDS)
    try:
        yield lock
    finally:
        lock.release()
