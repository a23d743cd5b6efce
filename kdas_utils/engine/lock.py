"""One process per run folder: :class:`RunLock`.

Two processes that train into the same folder (a second ``kdas`` while the first trains, or a
notebook and a command) would overwrite each other's ``last.pt`` and ``best.pt``. So the folder
is *held*: a file ``<run folder>/run.lock`` names its holder (pid, host, start time), created
atomically (``O_CREAT | O_EXCL``: of two processes that try at once, exactly one succeeds).

* A second process that asks for the folder gets :class:`RunLockedError`, one line naming the holder.
* A *stale* lock, whose holder's pid no longer runs on this host (killed, machine restarted),
  is taken over with a warning.
* The same process may take its own folder again (``with RunLock(d): ... with RunLock(d): ...``):
  the lock counts its holds and is removed when the outermost one ends.

This is the series' choice; the released KDAS code has no such guard.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

from ..errors import KDASError

LOCK_NAME = "run.lock"

_held: dict[Path, int] = {}  # lock files this process holds -> how many times


class RunLockedError(KDASError, RuntimeError):
    """Another running process holds the run folder; the message names it."""


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def read_lock(path: Path) -> dict:
    """The holder recorded in a lock file: ``{"pid", "host", "started"}`` (``{}`` if unreadable)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe_holder(holder: dict) -> str:
    """``"pid 123 on host h, since 2026-12-02 18:40:01"`` for a lock's holder."""
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, since {when}"


class RunLock:
    """Hold ``folder`` (a run's checkpoint folder) for this process, as a context manager.

    Args:
        folder: the run folder; created if missing.

    Raises:
        RunLockedError: on entry, when a live process (another pid on this host, or any process
            on another host) holds it.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = (self.folder / LOCK_NAME).resolve()

    def _create(self) -> bool:
        """Write our lock file if none exists; False if one does."""
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as file:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, file)
        return True

    def acquire(self) -> RunLock:
        if self.path in _held:
            _held[self.path] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a lock removed between our two looks: try again
            if self._create():
                _held[self.path] = 1
                return self
            holder = read_lock(self.path)
            same_host = holder.get("host") == socket.gethostname()
            pid = holder.get("pid")
            if not holder and self.path.exists() and time.time() - self.path.stat().st_mtime < 5:
                time.sleep(0.2)  # its holder is still writing it
                continue
            if holder and not (same_host and isinstance(pid, int) and not _alive(pid)):
                raise RunLockedError(
                    f"{self.folder}: this run folder is in use by another process ({describe_holder(holder)}); "
                    f"wait for it to finish or stop it. If it is not running any more, delete {self.path}"
                )
            warnings.warn(
                f"{self.folder}: taking over a stale lock ({describe_holder(holder) if holder else 'unreadable'}: "
                f"that process is gone); its run resumes from last.pt",
                stacklevel=3,
            )
            self.path.unlink(missing_ok=True)
        raise RunLockedError(f"{self.path}: could not take this lock; delete it if no process uses {self.folder}")

    def release(self) -> None:
        count = _held.get(self.path, 0)
        if count > 1:
            _held[self.path] = count - 1
            return
        _held.pop(self.path, None)
        if read_lock(self.path).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
