"""The structure loss of PraNet / Polyp-PVT / KDAS, and deep supervision on P1 and P2.

For logits ``P`` and a mask ``G`` (both ``(B, 1, H, W)``), with the boundary weight map::

    w = 1 + 5 |avgpool_31(G) - G|          (large near polyp edges, 1 far from them)

the loss of one image is::

    L_st = wBCE + wIoU
    wBCE = sum(w * BCE(P, G)) / sum(w)
    wIoU = 1 - (sum(w * p * G) + 1) / (sum(w * (p + G)) - sum(w * p * G) + 1),   p = sigmoid(P)

and the batch loss is the mean over images.

``variant="released"`` reproduces the released code, whose BCE is *not* weighted: it calls
``binary_cross_entropy_with_logits(..., reduce='none')``, a deprecated argument that means
"reduce", so the BCE is already a batch-mean scalar before the weights are applied, and
``sum(w * bce) / sum(w)`` gives that scalar back. Its wIoU is as above.

Partial labels (the series' choice, for the "teacher as a labeller" study): a frame whose mask is
all NaN has no label, and :func:`deep_supervision_loss` leaves it out, averaging over the
labelled frames of the batch only (0, with a gradient of zeros, when the batch has none). The
distillation terms are computed on every frame (:mod:`kdas_utils.data.partial`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VARIANTS = ("paper", "released")


def boundary_weights(mask: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` weights ``1 + 5 |avgpool_31(G) - G|`` (zero padding counted, as released).

    The 31 x 31 mean is taken as a 31 x 1 mean of 1 x 31 means: the same average (a box filter is
    separable, and with zero padding counted both divide by 31 * 31), equal to rounding
    (``tests/test_losses.py`` compares it with the released 31 x 31 ``avg_pool2d``), in 62 additions
    per pixel instead of 961 (it was 9% of a teacher training step on the CPU)."""
    rows = F.avg_pool2d(mask, kernel_size=(1, 31), stride=1, padding=(0, 15))
    return 1 + 5 * torch.abs(F.avg_pool2d(rows, kernel_size=(31, 1), stride=1, padding=(15, 0)) - mask)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """Weighted BCE + weighted IoU, per image, then the batch mean (a scalar).

    Args:
        logits: ``(B, 1, H, W)`` raw scores.
        mask: ``(B, 1, H, W)`` ground truth in [0, 1] (soft values allowed).
        variant: ``"paper"`` (weighted BCE) or ``"released"`` (unweighted BCE, as the code).
    """
    wbce, wiou = structure_terms(logits, mask, variant)
    return (wbce + wiou).mean()


def structure_terms(
    logits: torch.Tensor, mask: torch.Tensor, variant: str = "paper"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of :func:`structure_loss`, ``(wBCE, wIoU)``, each ``(B, 1)`` (one per image)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: choose one of {VARIANTS}")
    if logits.shape != mask.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and mask {tuple(mask.shape)} must have the same shape")
    if torch.isnan(mask).any():
        raise ValueError(
            "mask holds NaN, the marker of an unlabelled frame: structure_loss needs labels; "
            "deep_supervision_loss leaves unlabelled frames out"
        )
    logits, mask = logits.float(), mask.float()  # the loss is computed in fp32, also under autocast
    weights = boundary_weights(mask)
    if variant == "paper":
        bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
        wbce = (weights * bce).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))
    else:
        wbce = F.binary_cross_entropy_with_logits(logits, mask).expand(mask.shape[:2])
    probability = torch.sigmoid(logits)
    inter = (probability * mask * weights).sum(dim=(2, 3))
    union = ((probability + mask) * weights).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return wbce, wiou


def is_labelled(mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: which masks of a ``(B, 1, H, W)`` batch are labels (no NaN in them)."""
    return ~torch.isnan(mask).flatten(1).any(dim=1)


def deep_supervision_loss(out, mask: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """``L_st(P1, G) + L_st(P2, G)`` for a :class:`~kdas_utils.kdas.PolypOutput`, over the
    labelled frames of the batch (a frame whose ``(1, H, W)`` mask is NaN is left out)."""
    known = is_labelled(mask)
    if known.all():
        return structure_loss(out.p1, mask, variant) + structure_loss(out.p2, mask, variant)
    if not known.any():  # no label in this batch: nothing to learn from L_seg, but keep the graph
        return 0.0 * (out.p1.float().sum() + out.p2.float().sum())
    return structure_loss(out.p1[known], mask[known], variant) + structure_loss(out.p2[known], mask[known], variant)
