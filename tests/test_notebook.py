"""kdas_utils.notebook.progress_bars: the switch that keeps progress bars out of executed notebooks."""

import pytest

from kdas_utils.notebook import progress_bars


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("1", True), ("0", False), ("off", False), ("No", False)]
)
def test_progress_bars_follow_kdas_progress(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("KDAS_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("KDAS_PROGRESS", value)
    assert progress_bars() is expected
