"""The CPU speed-ups of the training loop, as settings the benchmark passes explicitly.

``python -m kdas_utils.bench --epoch-times`` times the loop as it was before the speed-ups
(:data:`BASELINE`) and as it is (:data:`NEW`) in the same run, on the same machine, at the same
moment. Each path is a set of :class:`~kdas_utils.engine.TrainConfig` values
(:meth:`SpeedPath.changes`); nothing here is read by the loop or the loss, which only see their
arguments:

- ``fused_adamw``: AdamW's single kernel for all parameters (torch >= 2.4 on the CPU) instead of
  one loop over tensors. Changes nothing (rounding).
- ``lean_validation``: a distilled student's validation runs the student only, so the teacher's
  forward over the validation frames (about a tenth of an epoch's teacher work) is skipped. Its
  ``val_loss`` becomes ``L_seg``, the same loss as the student alone's; ``val_dice`` and the
  selection of ``best.pt`` do not change.
- ``cpu_bf16``: on a CPU that does bf16 in hardware (AVX512-BF16 or AMX), ``amp="auto"`` trains and
  validates under bf16 autocast, as it does on recent GPUs (matrix products and convolutions in bf16,
  the losses in fp32); the baseline passes ``amp="off"``. Changes the numbers: the benchmark's results
  check trains the same student on both paths. A CPU without it keeps fp32 (emulated bf16 is slower).

A fourth speed-up has no switch any more: the structure loss's 31 x 31 boundary mean is taken as a
31 x 1 mean of 1 x 31 means (:func:`kdas_utils.kdas.boundary_weights`; equal to rounding, tested
against the 31 x 31 mean), so since 2026-12-07 the baseline path includes it too and the measured
epoch speed-up counts the three above (the JSONs before that date count all four).

Example::

    from kdas_utils import speed
    config = TrainConfig(epochs=1, **speed.BASELINE.changes(cpu=True))  # the loop as it was before
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class SpeedPath:
    """Which speed-ups are on (all by default); see the module's list."""

    fused_adamw: bool = True
    lean_validation: bool = True
    cpu_bf16: bool = True

    def off(self) -> list[str]:
        """The names of the speed-ups switched off."""
        return [f.name for f in dataclasses.fields(self) if not getattr(self, f.name)]

    def changes(self, cpu: bool) -> dict:
        """The :class:`~kdas_utils.engine.TrainConfig` values of this path (on a CPU device, the
        ``amp`` that keeps fp32 when ``cpu_bf16`` is off; a GPU's precision is not part of the path)."""
        values = {"fused_adamw": self.fused_adamw, "lean_validation": self.lean_validation}
        return values | ({"amp": "off"} if cpu and not self.cpu_bf16 else {})


NEW = SpeedPath()
BASELINE = SpeedPath(fused_adamw=False, lean_validation=False, cpu_bf16=False)
