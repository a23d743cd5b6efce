"""What the engine minimises: an *objective* ``objective(model, images, masks) -> (loss, output, parts)``.

Two live here, the student trained alone and the student taught by a frozen teacher:

* :class:`SegmentationObjective`: ``L_seg = L_st(P1, G) + L_st(P2, G)`` (the teacher, and the
  ``no-kd`` student);
* :class:`DistillationObjective`: a frozen teacher and a distillation loss such as
  :class:`~kdas_utils.kdas.KDASLoss` (``L_KDAS``).

An objective is called with ``(B, 3, H, W)`` images and ``(B, 1, H, W)`` masks and returns the scalar
to minimise, the model's :class:`~kdas_utils.kdas.PolypOutput`, and a dict of named scalar terms
for the log. An objective that is an ``nn.Module`` with parameters is trained with the model; its
``settings()`` are recorded in checkpoints (:func:`objective_settings`).
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import deep_supervision_loss
from .polyp_pvt import PolypOutput


class SegmentationObjective(nn.Module):
    """The teacher's objective (and the student alone's), deep supervision with the structure loss:
    ``L_seg = L_st(P1, G) + L_st(P2, G)``; called as the module's docstring says."""

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


class DistillationObjective(nn.Module):
    """The student's objective: a frozen teacher and a distillation loss (:class:`~kdas_utils.kdas.KDASLoss`).

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

    A teacher with a ``settings()`` of its own (the CPU's int8 teacher,
    :func:`kdas_utils.engine.int8_teacher`, an option of this series) adds it to :meth:`settings`.
    """

    def __init__(self, teacher: nn.Module, loss: nn.Module):
        super().__init__()
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)  # not a sub-module: no state_dict entries
        self.loss = loss

    def _apply(self, fn, *args, **kwargs):
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # always
        return self

    def settings(self) -> dict:
        """``{"objective": "kdas", **loss.settings()}``, and the teacher's own settings if it has any
        (``{"teacher": "int8"}``; see :func:`objective_settings`)."""
        teacher = getattr(self.teacher, "settings", None)
        return {"objective": "kdas", **self.loss.settings(), **(teacher() if callable(teacher) else {})}

    def validation_objective(self) -> SegmentationObjective:
        """What the engine validates with: ``L_seg`` of the student alone (same BCE variant), without
        the teacher's forward (the engine does so unless ``TrainConfig(lean_validation=False)``)."""
        return SegmentationObjective(getattr(self.loss, "seg_variant", "paper"))

    def compile_teacher(self) -> None:
        """Run the teacher's forward through ``torch.compile`` (the engine's ``compile=True``)."""
        self.__dict__["teacher"] = torch.compile(self.teacher)

    def forward(self, student: nn.Module, images: torch.Tensor, masks: torch.Tensor):
        with torch.inference_mode():
            teacher_out = self.teacher(images)
        teacher_out = clone_output(teacher_out)
        student_out = student(images)
        with torch.autocast(images.device.type, enabled=False):  # the losses in fp32, also under autocast
            parts = self.loss(student_out, teacher_out, masks)
        loss = parts["total"]
        if getattr(self.loss, "at_form", None) == "released":
            loss = self.loss.combine(parts["seg"], torch.nan_to_num(parts["at"], nan=0.0), parts["sgm"], parts["kd"])
        return loss, student_out, {k: v.detach() for k, v in parts.items()}
