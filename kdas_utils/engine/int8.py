"""The int8 teacher: a CPU speed option of this series (neither the paper's nor the release's).

``DistillationObjective(int8_teacher(teacher), loss)`` distils from a copy of the teacher whose
``nn.Linear`` layers (the transformer's attention and MLP matrices, most of a PVTv2 forward on the
CPU) compute in int8: PyTorch's dynamic quantisation (weights quantised once, per tensor;
activations at each call). The objective records ``{"teacher": "int8"}`` from :meth:`Int8Teacher.settings`
in the run's checkpoints, so a run is never resumed with the other teacher.

What it changes, measured by ``python -m kdas_utils.bench --int8-check`` on the standard profile's
teacher (the JSON in ``benchmarks/results/``): the teacher's validation Dice and the relative L2
error of each distillation target (stages, CIM, CFM, SAM, P1, P2).

torch 2.14 warns that ``torch.ao.quantization`` is deprecated in favour of torchao; the warnings are
silenced here, and this module is the one place to switch.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic


class Int8Teacher(nn.Module):
    """A teacher network with int8 ``nn.Linear`` layers, CPU only. Its quantised layers take fp32
    only: it runs outside any autocast (the CPU's bf16, :func:`kdas_utils.engine.choose_precision`),
    so its outputs are fp32 in a bf16 run too."""

    def __init__(self, teacher: nn.Module):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            self.net = quantize_dynamic(copy.deepcopy(teacher).cpu().eval(), {nn.Linear}, dtype=torch.qint8)

    def settings(self) -> dict:
        """What a checkpoint records of this teacher (see :meth:`DistillationObjective.settings`)."""
        return {"teacher": "int8"}

    def _apply(self, fn, *args, **kwargs):
        if fn(torch.empty(0)).device.type != "cpu":
            raise ValueError("teacher_int8=True: the int8 teacher runs on the CPU only; train on the CPU or drop it")
        return super()._apply(fn, *args, **kwargs)

    def forward(self, images: torch.Tensor):
        with torch.autocast("cpu", enabled=False):
            return self.net(images)


def int8_teacher(teacher: nn.Module) -> Int8Teacher:
    """An :class:`Int8Teacher` copy of ``teacher`` (which is left as it is)."""
    return Int8Teacher(teacher)
