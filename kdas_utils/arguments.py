"""Command-line values checked by the parser, before any work starts: the ``kdas`` command's and
the bench's. A value out of its range ends the command with one line and exit status 2::

    kdas distill: error: argument --alpha: 1.5 is not in [0, 1]; give e.g. 0.1 (see kdas distill --help)
"""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, as the commands' own errors are:
    ``kdas distill: error: argument --alpha: 1.5 is not in [0, 1] ...`` and exit status 2, before any work."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _number(text: str, kind=float):
    """``text`` as a ``kind`` (int or float), or the argparse error that names it."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive; give at least 1")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (a seed)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not in (0, 1]; give e.g. 0.25 for a quarter")
    return value


def unit_interval(text: str) -> float:
    """An argparse type: a number in [0, 1] (the weight alpha of the distillation terms)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not in [0, 1]; give e.g. 0.1")
    return value


def threshold(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a probability threshold)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not strictly between 0 and 1; give e.g. 0.5")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0 (a temperature)."""
    value = _number(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value:g} is not positive; give e.g. 2")
    return value


def image_size(text: str) -> int:
    """An argparse type: a positive multiple of 32 (the backbones downsample by 32)."""
    value = _number(text, int)
    if value < 32 or value % 32:
        raise argparse.ArgumentTypeError(f"{value} is not a positive multiple of 32; give e.g. 352")
    return value
