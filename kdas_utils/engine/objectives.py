"""What the engine minimises: an *objective* ``objective(model, images, masks) -> (loss, output, parts)``.

Two live here, the student trained alone and the student taught by a frozen teacher:

* :class:`SegmentationObjective`: ``L_seg = L_st(P1, G) + L_st(P2, G)`` (the teacher, and the
  ``no-kd`` student);
* :class:`DistillationObjective`: a frozen teacher and a distillation loss such as
  :class:`~kdas_utils.distill.KDASLoss` (``L_KDAS``).

An objective is called with ``(B, 3, H, W)`` images and ``(B, 1, H, W)`` masks and returns the scalar
to minimise, the model's :class:`~kdas_utils.models.PolypOutput`, and a dict of named scalar terms
for the log. An objective that is an ``nn.Module`` with parameters is trained with the model; its
``settings()`` are recorded in checkpoints (:func:`objective_settings`).
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic

from ..losses import deep_supervision_loss
from ..models.polyp_pvt import PolypOutput


class SegmentationObjective(nn.Module):
    """The teacher's objective, deep supervision with the structure loss:
    ``L_seg = L_st(P1, G) + L_st(P2, G)``.

    An objective is called as ``objective(model, images, masks)`` with ``(B, 3, H, W)`` images
    and ``(B, 1, H, W)`` masks and returns ``(loss, output, parts)``: the scalar to minimise,
    the model's :class:`~kdas_utils.models.PolypOutput`, and a dict of named scalar terms for
    the log. An objective that is an ``nn.Module`` with parameters is trained with the model.
    """

    def __init__(self, variant: str = "paper"):
        super().__init__()
        self.variant = variant

    def settings(self) -> dict:
        """What this objective computes, as plain values (see :func:`objective_settings`)."""
        return {"objective": "segmentation", "variant": self.variant}

    def forward(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor):
        out = model(images)
        loss = deep_supervision_loss(out, masks, self.variant)
        return loss, out, {"seg": loss.detach()}


def objective_settings(objective) -> dict | None:
    """``objective.settings()``: the values that decide what an objective computes (its terms
    and weights), or ``None`` for an objective without the method. Checkpoints record them so
    that a run is never resumed, or loaded as finished, under other settings."""
    settings = getattr(objective, "settings", None)
    return settings() if callable(settings) else None


def clone_output(out: PolypOutput) -> PolypOutput:
    """Clones of a teacher output made under ``torch.inference_mode()``: inference tensors
    cannot be saved for the student's backward pass, ordinary constants can."""
    return PolypOutput(
        p1=out.p1.clone(),
        p2=out.p2.clone(),
        stages=tuple(s.clone() for s in out.stages),
        prenorm=tuple(s.clone() for s in out.prenorm),
        cim=out.cim.clone(),
        cfm=out.cfm.clone(),
        sam=out.sam.clone(),
    )


def int8_teacher(teacher: nn.Module) -> nn.Module:
    """A copy of ``teacher`` whose ``nn.Linear`` layers (the transformer's attention and MLP
    matrices, most of a PVTv2 forward on the CPU) compute in int8: PyTorch's dynamic quantisation
    (weights quantised once, per tensor; activations at each call). CPU only.

    What it changes, measured by ``python -m kdas_utils.bench --int8-check`` on the standard
    profile's teacher (the JSON in ``benchmarks/results/``): the teacher's validation Dice and the
    relative L2 error of each distillation target (stages, CIM, CFM, SAM, P1, P2).

    torch 2.14 warns that ``torch.ao.quantization`` is deprecated in favour of torchao; the warnings
    are silenced here, and this function is the one place to switch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return quantize_dynamic(copy.deepcopy(teacher).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


class DistillationObjective(nn.Module):
    """The student's objective: a frozen teacher and a distillation loss (:class:`~kdas_utils.distill.KDASLoss`).

    The teacher is put in ``eval()`` mode with ``requires_grad=False`` and runs under
    ``torch.inference_mode()``: no graph is built through it and nothing flows back into it
    (the released code builds that graph and back-propagates NaN into the teacher). It is not
    a registered sub-module, so it is neither trained nor written into the student's
    checkpoints; ``.to(device)`` moves it along.

    Call: ``objective(student, images, masks) -> (loss, student_out, parts)`` as the engine expects.

    With ``at="released"`` the value of ``L_AT`` is NaN (see :mod:`.attention`) while its
    gradient to the student is exactly zero. The engine stops on a non-finite loss, so the loss
    it minimises here leaves that NaN *value* out (``nan_to_num``); the gradients are those of the
    released code (``tests/test_distill.py`` checks they are equal), and ``parts["at"]`` still
    reports the NaN.

    With ``teacher_int8``, the teacher runs through :func:`int8_teacher` (CPU only; an option of
    ours, neither the paper's nor the release's), and :meth:`settings` records it.
    """

    def __init__(self, teacher: nn.Module, loss: nn.Module, teacher_int8: bool = False):
        super().__init__()
        teacher.eval().requires_grad_(False)
        if teacher_int8:
            teacher = int8_teacher(teacher)
        self.__dict__["teacher"] = teacher  # not a sub-module: no parameters, no state_dict entries
        self.loss, self.teacher_int8 = loss, teacher_int8

    def _apply(self, fn, *args, **kwargs):
        if self.teacher_int8 and fn(torch.empty(0)).device.type != "cpu":
            raise ValueError("teacher_int8=True: the int8 teacher runs on the CPU only; train on the CPU or drop it")
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # always
        return self

    def settings(self) -> dict:
        """``{"objective": "kdas", **loss.settings()}``, with ``"teacher": "int8"`` for an int8
        teacher (see :func:`objective_settings`)."""
        return {"objective": "kdas", **self.loss.settings(), **({"teacher": "int8"} if self.teacher_int8 else {})}

    def validation_objective(self) -> SegmentationObjective:
        """What the engine validates with: ``L_seg`` of the student alone (same BCE variant), without
        the teacher's forward (:mod:`kdas_utils.speed`, ``lean_validation``)."""
        return SegmentationObjective(getattr(self.loss, "seg_variant", "paper"))

    def _teacher_precision(self):
        """The int8 teacher's quantised layers take fp32 only: it runs outside any autocast (the
        CPU's bf16, :func:`kdas_utils.engine.choose_precision`); any other teacher runs as the student."""
        return torch.autocast("cpu", enabled=False) if self.teacher_int8 else contextlib.nullcontext()

    def compile_teacher(self) -> None:
        """Run the teacher's forward through ``torch.compile`` (the engine's ``compile=True``)."""
        self.__dict__["teacher"] = torch.compile(self.teacher)

    def forward(self, student: nn.Module, images: torch.Tensor, masks: torch.Tensor):
        with torch.inference_mode(), self._teacher_precision():
            teacher_out = self.teacher(images)
        teacher_out = clone_output(teacher_out)
        student_out = student(images)
        with torch.autocast(images.device.type, enabled=False):  # the losses in fp32, also under autocast
            parts = self.loss(student_out, teacher_out, masks)
        loss = parts["total"]
        if getattr(self.loss, "at_form", None) == "released":
            loss = self.loss.combine(parts["seg"], torch.nan_to_num(parts["at"], nan=0.0), parts["sgm"], parts["kd"])
        return loss, student_out, {k: v.detach() for k, v in parts.items()}
