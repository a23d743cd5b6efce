"""Where the code runs, as the lowest floors need to know it: inside Colab or not, and whether to
draw progress bars. Imports nothing of the package, so data, engine and evaluation can read it
without reaching up to the notebook helpers (:mod:`kdas_utils.notebook` re-exports both)."""

from __future__ import annotations

import os
import sys

# ``make tutorial`` and ``make test`` set it to 0 for the notebooks they execute: a tqdm bar saved in
# a notebook's outputs is only its first frame ("0%|          | 0/8"), residue rather than information.
PROGRESS_VARIABLE = "KDAS_PROGRESS"


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def progress_bars() -> bool:
    """Whether to draw tqdm progress bars: yes, unless ``$KDAS_PROGRESS`` is ``0`` (or ``false``,
    ``no``, ``off``), which ``make tutorial`` and ``make test`` set for the notebooks they execute."""
    return os.environ.get(PROGRESS_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")
