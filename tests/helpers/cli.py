"""The ``kdas`` command in a test's own process, and the one-line error every user's mistake ends in."""

from __future__ import annotations

import os
import subprocess

from kdas_utils.cli import main


def run_main(capsys, *args) -> subprocess.CompletedProcess:
    """``kdas *args`` in this process (:func:`kdas_utils.cli.main`, what the installed command calls),
    as the result of a process: exit status, stdout and stderr. Six to seven seconds cheaper than
    starting the installed ``kdas`` (no new interpreter importing torch); ``tests/test_cli.py`` checks
    the real command apart (``test_errors_through_the_real_command``). The environment is put back
    afterwards, as a process's end would: ``--test-root`` adds to ``$KDAS_TEST_ROOTS`` for its process,
    and a later test (or notebook kernel) must not inherit it."""
    capsys.readouterr()
    saved = dict(os.environ)
    try:
        code = main(list(args))
    except SystemExit as stopped:  # the parser's errors and --help
        code = stopped.code
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["kdas", *args], code, out, err)


def one_line_error(result, command: str, *phrases: str) -> str:
    """The run ended with exit status 2 and one stderr line ``kdas <command>: error: ...`` holding ``phrases``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"kdas {command}: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]
