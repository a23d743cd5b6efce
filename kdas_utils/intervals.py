"""Confidence intervals over frames: how sure a mean Dice on a few dozen frames is.

The unseen test sets here are small (19 and 20 frames), so every mean needs an interval. The series
uses the **percentile bootstrap over frames** (Efron and Tibshirani 1993), computed by
:func:`scipy.stats.bootstrap` (this series' choice; the paper reports means only):

* :func:`mean_interval`: resample the frames of a set with replacement, ``n_resamples`` times, take
  each resample's mean; the 2.5th and 97.5th percentiles of those means are the 95% interval.
* :func:`paired_difference`: the same for the mean of the per-frame differences ``a - b`` of two
  models scored on the *same* frames (paired: one frame's two scores are resampled together, so the
  frames' difficulty, shared by both models, cancels out).

The seed is fixed, so a table is the same each time it is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import signature

import numpy as np
from scipy.stats import bootstrap

LEVEL = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A mean and its interval: ``mean``, ``low``, ``high`` over ``n`` frames at ``level``."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (for a difference)."""
        return self.low > 0 or self.high < 0


def _values(values, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{name}: no frames to take a mean of")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int((~np.isfinite(array)).sum())} of {array.size} scores are not finite")
    return array


def mean_interval(values, level: float = LEVEL, n_resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The mean of per-frame ``values`` with its percentile-bootstrap interval over frames.

    One frame has no spread: its interval is the value itself."""
    array = _values(values)
    if array.size == 1 or np.ptp(array) == 0:
        return Interval(float(array.mean()), float(array[0]), float(array[0]), array.size, level)
    # scipy 1.15 renamed random_state to rng; either takes a Generator
    seeded = {"rng" if "rng" in signature(bootstrap).parameters else "random_state": np.random.default_rng(seed)}
    result = bootstrap(
        (array,), np.mean, n_resamples=n_resamples, confidence_level=level, method="percentile", **seeded
    )
    ci = result.confidence_interval
    return Interval(float(array.mean()), float(ci.low), float(ci.high), array.size, level)


def paired_difference(a, b, level: float = LEVEL, n_resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """``mean(a - b)`` over the same frames, in the same order, with its paired bootstrap interval.

    Raises:
        ValueError: ``a`` and ``b`` hold different numbers of frames.
    """
    a, b = _values(a, "a"), _values(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same frames: {a.size} against {b.size}")
    return mean_interval(a - b, level, n_resamples, seed)
