"""Percentile-bootstrap intervals over frames, against cases computed by hand."""

import numpy as np
import pytest

from kdas_utils.intervals import mean_interval, paired_difference


def test_two_frames_by_hand():
    # Resampling [0, 1] twice with replacement gives the means 0, 0.5, 0.5, 1 (each order 1/4):
    # P(0) = 1/4, P(0.5) = 1/2, P(1) = 1/4, so the 2.5th percentile is 0 and the 97.5th is 1.
    interval = mean_interval([0.0, 1.0])
    assert interval.mean == 0.5 and interval.low == 0.0 and interval.high == 1.0 and interval.n == 2
    assert str(interval) == "0.500 [0.000, 1.000]"


def test_a_hand_computed_distribution_of_three_frames():
    # [0, 0, 1]: the resample mean is k/3 with k ~ Binomial(3, 1/3): P(k=0) = 8/27 = 0.296 > 0.025,
    # so the low end is 0; P(k=3) = 1/27 = 0.037 > 0.025, so the high end is 1.
    interval = mean_interval([0.0, 0.0, 1.0])
    assert interval.low == 0.0 and interval.high == 1.0 and interval.mean == pytest.approx(1 / 3)
    # at 90%: the 95th percentile; P(k=3) = 0.037 < 0.05, so the high end is 2/3
    assert mean_interval([0.0, 0.0, 1.0], level=0.9).high == pytest.approx(2 / 3)


def test_the_interval_narrows_with_more_frames_and_holds_the_mean():
    rng = np.random.default_rng(1)
    few, many = rng.uniform(0.4, 0.9, 20), rng.uniform(0.4, 0.9, 400)
    a, b = mean_interval(few), mean_interval(many)
    assert a.low < a.mean < a.high and b.low < b.mean < b.high
    assert (b.high - b.low) < (a.high - a.low) / 3  # about sqrt(20) times narrower
    assert mean_interval(few) == a  # seeded: the same each time


def test_paired_differences_cancel_the_frames_difficulty():
    difficulty = np.linspace(0.1, 0.9, 19)  # frames of very different difficulty ...
    better = difficulty + 0.05  # ... and a model exactly 0.05 better on every one
    paired = paired_difference(better, difficulty)
    assert paired.mean == pytest.approx(0.05) and paired.low == pytest.approx(0.05) == paired.high
    assert paired.excludes_zero()
    unpaired = mean_interval(better).low - mean_interval(difficulty).high  # the two intervals overlap
    assert unpaired < 0


def test_bad_scores_are_refused_by_name():
    with pytest.raises(ValueError, match="same frames: 3 against 2"):
        paired_difference([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="1 of 2 scores are not finite"):
        mean_interval([0.5, float("nan")])
    with pytest.raises(ValueError, match="no frames"):
        mean_interval([])
