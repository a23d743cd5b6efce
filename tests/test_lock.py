"""One process per run folder (kdas_utils.engine.lock), tested with real processes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.cli import one_line_error, run_main

from kdas_utils.engine import RunLock, RunLockedError
from kdas_utils.engine.lock import LOCK_NAME, read_lock

# A process that holds a folder until its standard input closes (or dies without letting go).
HOLDER = textwrap.dedent(
    """
    import os, sys
    from kdas_utils.engine import RunLock, RunLockedError
    try:
        lock = RunLock(sys.argv[1]).acquire()
    except RunLockedError as error:
        print("refused:", error, flush=True)
        sys.exit(3)
    print("held", os.getpid(), flush=True)
    if sys.argv[2] == "die":
        os._exit(0)  # as a killed process: the lock file stays behind
    sys.stdin.read()
    lock.release()
    """
)


def holder(folder: Path, mode: str = "hold") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_second_kdas_on_a_held_run_folder_gets_one_line_naming_the_holder(tmp_path, monkeypatch, capsys):
    """Another process holds the folder; ``kdas train-teacher`` (its main, in this process) is refused."""
    folder = tmp_path / "runs" / "checkpoints" / "teacher-quick"
    first = holder(folder)
    try:
        assert first.stdout.readline().split() == ["held", str(first.pid)]
        monkeypatch.setenv("KDAS_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.setenv("KDAS_SYNTH_ROOT", str(tmp_path / "synthetic"))
        result = run_main(capsys, "train-teacher", "--profile", "quick", "--epochs", "1", "--device", "cpu")
        one_line_error(result, "train-teacher", "in use by another process", f"pid {first.pid} on host")
        assert not (folder / "last.pt").exists() and not (tmp_path / "synthetic").exists()  # no work was done
        assert read_lock(folder / LOCK_NAME)["pid"] == first.pid  # the holder's lock is untouched
    finally:
        first.communicate("", timeout=60)
    assert first.returncode == 0 and not (folder / LOCK_NAME).exists()  # released by its holder


def test_two_processes_at_once_one_holds_the_other_is_refused(tmp_path):
    both = [holder(tmp_path / "run") for _ in range(2)]
    firsts = [process.stdout.readline() for process in both]
    for process in both:
        process.communicate("", timeout=60)
    held = [line for line in firsts if line.startswith("held")]
    refused = [line for line in firsts if line.startswith("refused")]
    assert len(held) == 1 and len(refused) == 1, firsts
    assert sorted(p.returncode for p in both) == [0, 3]
    assert f"pid {held[0].split()[1]} on host" in refused[0]


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    folder = tmp_path / "run"
    dead = holder(folder, "die")
    pid = int(dead.stdout.readline().split()[1])
    dead.wait(timeout=60)
    assert read_lock(folder / LOCK_NAME)["pid"] == pid  # left behind by a process that is gone
    with pytest.warns(UserWarning, match=rf"taking over a stale lock \(pid {pid} on host"):
        lock = RunLock(folder).acquire()
    assert read_lock(folder / LOCK_NAME)["pid"] == os.getpid()
    lock.release()
    assert not (folder / LOCK_NAME).exists()


def test_the_same_process_may_hold_its_folder_twice(tmp_path):
    with RunLock(tmp_path / "run"):
        with RunLock(tmp_path / "run"):
            pass
        assert (tmp_path / "run" / LOCK_NAME).exists()  # still held by the outer one
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_lock_of_a_live_process_on_another_host_is_not_taken(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    with pytest.raises(RunLockedError, match="pid 1 on host elsewhere"):
        RunLock(folder).acquire()
    assert read_lock(folder / LOCK_NAME)["host"] == "elsewhere"


def test_an_error_inside_releases_the_folder(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with RunLock(tmp_path / "run"):
            raise ZeroDivisionError("inside the run")
    assert not (tmp_path / "run" / LOCK_NAME).exists()
