"""The training step, the few lines every run of the series goes through (notebook 02 shows them),
and the validation pass that selects the epoch kept.

:class:`~kdas_utils.engine.Trainer` calls :func:`training_step` once per batch and training size,
and adds around it what a long run needs: multi-scale sizes, the learning-rate schedule, mixed
precision, several processes, a stop on a non-finite loss, checkpoints and resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..metrics import dice_at


def training_step(
    network: nn.Module,
    objective: Callable,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    masks: torch.Tensor,
    parameters: Iterable[nn.Parameter],
    clip_value: float | None = 0.5,
    clip_norm: float | None = None,
    precision=contextlib.nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    check: Callable[[torch.Tensor], None] | None = None,
):
    """One optimiser step on one batch: forward through the objective, backward, clip, step.

    Args:
        network: the model being trained (the teacher, or the student).
        objective: ``objective(network, images, masks) -> (loss, output, parts)``, e.g.
            :class:`~kdas_utils.kdas.SegmentationObjective` (``L_seg``) or
            :class:`~kdas_utils.kdas.DistillationObjective` (a frozen teacher and ``L_KDAS``).
        images, masks: ``(B, 3, H, W)`` frames and ``(B, 1, H, W)`` masks (NaN: no label).
        parameters: what the optimiser updates (the network's, and the objective's own if it has any).
        clip_value: clamp every gradient element to [-v, v] (the released code's 0.5); ``None``: off.
        clip_norm: rescale the gradient to this global L2 norm at most; ``None``: off.
        precision: a context for the forward pass (autocast on a GPU or a bf16 CPU).
        scaler: fp16's gradient scaler (``None``: none, as in fp32 and bf16).
        check: called with the loss before the backward pass (the Trainer stops on NaN there).

    Returns:
        ``(loss, output, parts)`` of the objective: the scalar minimised, the network's
        :class:`~kdas_utils.kdas.PolypOutput` and the named terms.
    """
    parameters = list(parameters)
    scaler = scaler or torch.amp.GradScaler(enabled=False)  # a pass-through when there is nothing to scale
    with precision():
        loss, out, parts = objective(network, images, masks)
    if check is not None:
        check(loss)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # the clipping below sees the true gradients
    if clip_value is not None:
        nn.utils.clip_grad_value_(parameters, clip_value)
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(parameters, clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss, out, parts


@torch.inference_mode()
def validation_pass(
    model: nn.Module,
    objective: Callable,
    batches: Iterable[dict],
    precision=contextlib.nullcontext,
    to_device: Callable = lambda batch: (batch["image"], batch["mask"]),
) -> dict:
    """The mean loss and the mean Dice at 0.5 (:func:`kdas_utils.metrics.dice_at`) over ``batches`` of
    ``(B, 3, H, W)`` images and ``(B, 1, H, W)`` masks, with the network in ``eval()`` mode (BatchNorm's
    running statistics, every transformer block): ``{"val_loss": ..., "val_dice": ...}``."""
    model.eval()
    losses, dices, frames = [], [], 0
    for batch in batches:
        images, masks = to_device(batch)
        with precision():
            loss, out, _ = objective(model, images, masks)
        losses.append(loss.item() * len(images))
        frames += len(images)
        dices.append(dice_at(torch.sigmoid(out.logits.float()), masks))
    return {"val_loss": sum(losses) / frames, "val_dice": torch.cat(dices).mean().item()}
