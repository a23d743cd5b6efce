"""The CPU speed-ups of the training loop, and the setting that switches them off again.

Each speed-up computes what the code computed before it, to rounding, or says what it changes.
:func:`baseline` brings back the code as it was before all of them, so that the benchmark
(``python -m kdas_utils.bench --epoch-times``) times the old path and the new one in the same run, on
the same machine, at the same moment:

- ``separable_boundary``: the structure loss's 31 x 31 boundary mean as a 31 x 1 mean of 1 x 31
  means (62 additions per pixel, not 961). Changes nothing (rounding).
- ``fused_adamw``: AdamW's single kernel for all parameters (torch >= 2.4 on the CPU) instead of
  one loop over tensors. Changes nothing (rounding).
- ``lean_validation``: a distilled student's validation runs the student only, so the teacher's
  forward over the validation frames (about a tenth of an epoch's teacher work) is skipped. Its
  ``val_loss`` becomes ``L_seg``, the same loss as the student alone's; ``val_dice`` and the
  selection of ``best.pt`` do not change.
- ``cpu_bf16``: on a CPU that does bf16 in hardware (AVX512-BF16 or AMX), ``amp="auto"`` trains and
  validates under bf16 autocast, as it does on recent GPUs (matrix products and convolutions in bf16,
  the losses in fp32). Changes the numbers: the benchmark's results check trains the same student on
  both paths. A CPU without it keeps fp32 (emulated bf16 is slower).

It imports nothing of the package: the losses (below the engine) and the engine both read it.

Example::

    from kdas_utils import speed
    with speed.baseline():  # the code as it was before the speed-ups
        ...                 # build and run a Trainer here
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SpeedPath:
    """Which speed-ups are on (all by default); see the module's list."""

    separable_boundary: bool = True
    fused_adamw: bool = True
    lean_validation: bool = True
    cpu_bf16: bool = True

    def off(self) -> list[str]:
        """The names of the speed-ups switched off."""
        return [f.name for f in dataclasses.fields(self) if not getattr(self, f.name)]


NEW = SpeedPath()
BASELINE = SpeedPath(separable_boundary=False, fused_adamw=False, lean_validation=False, cpu_bf16=False)
_current = NEW


def current() -> SpeedPath:
    """The path in force (:data:`NEW` unless inside :func:`use` or :func:`baseline`)."""
    return _current


@contextlib.contextmanager
def use(path: SpeedPath):
    """Run the block under ``path``. A :class:`~kdas_utils.engine.Trainer` reads the optimiser's
    setting when it is built and the validation's when it validates; the loss reads its own at
    each call: build *and* run a trainer inside the block."""
    global _current
    before, _current = _current, path
    try:
        yield path
    finally:
        _current = before


def baseline():
    """:func:`use` (:data:`BASELINE`): the code as it was before the speed-ups."""
    return use(BASELINE)
