"""The Symmetrical Guiding Module: the student matches the teacher's symmetric structure.

Two forms, selectable in :class:`~kdas_utils.kdas.KDASLoss` with ``sgm=``:

``"released"`` (the released code). With the logit map ``P1`` read as a ``(B, H, W)`` matrix,

    Sym(P) = P + P^T,        L_SGM = MSE(Sym(P1_s), Sym(P1_t))

``Sym`` keeps the part of the map that is the same when the frame is mirrored about its
diagonal, so the student is asked to agree with the teacher on that structure. It needs square
maps.

``"covariance"`` (the covariance-driven guidance the paper describes; our precise definition).
For a feature ``F`` ``(B, C, H, W)`` with ``N = H W`` positions, centred over the positions,
the channel covariance

    Sigma(F) = (F - mean) (F - mean)^T / (N - 1)                  (B, C, C), symmetric

says which channels vary together over the frame: the *structure* of the representation,
independent of where things are. It is normalised by its Frobenius norm (teacher and student
features live on different scales), and the loss is the squared Frobenius distance between
student and teacher, averaged over the batch and summed over the chosen features:

    L_SGM = sum_f mean_b || Sigma(F_s) / ||Sigma(F_s)|| - Sigma(F_t) / ||Sigma(F_t)|| ||_F^2

By default the features are the decoder's CFM and SAM outputs (32 channels in both networks)
and backbone stage 4, where the student's 256 channels are first mapped to the teacher's 512 by
a learned 1x1 convolution (trained with the student).

The distance needs no ``C x C`` matrix (:func:`covariance_distance`): ``<X_s X_s^T, X_t X_t^T> =
||X_s^T X_t||_F^2`` for centred ``(C, N)`` features, an ``N x N`` product: about 90x cheaper for stage 4
(512 channels, ``N = 4`` at 64 px, 16 at 128 px). Exact, like the ``C x C`` form; they differ by rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .polyp_pvt import BACKBONES, FEATURES, feature_channels


def symmetric(p: torch.Tensor) -> torch.Tensor:
    """``Sym(P) = P + P^T`` of a ``(B, 1, H, H)`` (or ``(B, H, H)``) map, as ``(B, H, H)``."""
    if p.dim() == 4:
        p = p[:, 0]
    if p.shape[-1] != p.shape[-2]:
        raise ValueError(f"Sym(P) = P + P^T needs square maps; got {tuple(p.shape[-2:])}. Train on square images.")
    return p + p.transpose(-1, -2)


def channel_covariance(feature: torch.Tensor) -> torch.Tensor:
    """``(B, C, C)`` covariance of the channels of ``(B, C, H, W)`` over the ``H W`` positions."""
    x = feature.float().flatten(2)
    x = x - x.mean(dim=2, keepdim=True)
    cov = x @ x.transpose(1, 2) / max(x.shape[2] - 1, 1)
    return (cov + cov.transpose(1, 2)) / 2  # exactly symmetric, not just up to rounding


def normalized_covariance(feature: torch.Tensor) -> torch.Tensor:
    """:func:`channel_covariance` divided by its Frobenius norm (zero for a constant feature)."""
    cov = channel_covariance(feature)
    return cov / cov.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]


def covariance_distance(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """``(B,)``: ``|| Sigma(F_s)/||Sigma(F_s)|| - Sigma(F_t)/||Sigma(F_t)|| ||_F^2`` of two ``(B, C, H, W)``
    features (:func:`normalized_covariance`), through ``C x C`` or ``N x N`` products, whichever are smaller
    (``N = H W``; the module docstring gives the identity). A constant feature's normalised covariance is 0,
    as in :func:`normalized_covariance`."""
    xs, xt = (f.float().flatten(2) for f in (fs, ft))
    if xs.shape[2] >= xs.shape[1]:  # at least as many positions as channels: the C x C matrices are the small ones
        return (normalized_covariance(fs) - normalized_covariance(ft)).pow(2).sum(dim=(1, 2))
    xs, xt = xs - xs.mean(dim=2, keepdim=True), xt - xt.mean(dim=2, keepdim=True)
    ss, tt, st = ((a.transpose(1, 2) @ b).pow(2).sum(dim=(1, 2)) for a, b in ((xs, xs), (xt, xt), (xs, xt)))
    norm_s, norm_t = ss.sqrt().clamp(min=1e-12), tt.sqrt().clamp(min=1e-12)  # ||Sigma|| up to the 1/(N-1) that cancels
    return ss / norm_s**2 + tt / norm_t**2 - 2 * st / (norm_s * norm_t)


class SymmetricGuidance(nn.Module):
    """The released SGM: ``MSE(Sym(P1_s), Sym(P1_t))``."""

    def forward(self, student_out, teacher_out) -> torch.Tensor:
        return F.mse_loss(symmetric(student_out.p1.float()), symmetric(teacher_out.p1.float()))


class CovarianceGuidance(nn.Module):
    """The covariance-driven SGM (see the module docstring).

    Args:
        features: names among ``cim``, ``cfm``, ``sam``, ``stage1`` ... ``stage4``.
        student_channels, teacher_channels: channels of each feature (default: read from the
            student's and the teacher's backbones); where they differ a learned 1x1 convolution
            maps the student's to the teacher's.
    """

    def __init__(
        self,
        features=("stage4", "cfm", "sam"),
        student_channels: dict[str, int] | None = None,
        teacher_channels: dict[str, int] | None = None,
    ):
        super().__init__()
        student_channels = student_channels or feature_channels(BACKBONES["student"])
        teacher_channels = teacher_channels or feature_channels(BACKBONES["teacher"])
        unknown = [f for f in features if f not in student_channels or f not in teacher_channels]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; choose among {FEATURES}")
        self.features = tuple(features)
        self.projections = nn.ModuleDict(
            {
                f: nn.Conv2d(student_channels[f], teacher_channels[f], kernel_size=1, bias=False)
                for f in self.features
                if student_channels[f] != teacher_channels[f]
            }
        )

    def forward(self, student_out, teacher_out) -> torch.Tensor:
        total = 0.0
        for name in self.features:
            fs, ft = student_out.feature(name), teacher_out.feature(name)
            if name in self.projections:
                fs = self.projections[name](fs.float())  # fp32, as the rest of the loss
            total = total + covariance_distance(fs, ft).mean()
        return total
