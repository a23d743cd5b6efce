"""The Polyp-PVT decoder, one module per idea: CIM, CFM and SAM.

Shapes below are for a 352 x 352 input with the teacher (PVTv2-B2, stage widths 64, 128,
320, 512 at strides 4, 8, 16, 32); the student (PVTv2-B0) has widths 32, 64, 160, 256.
The decoder width ``C`` is 32 for both.

Faithful to the Polyp-PVT / KDAS released code, including two quirks kept on purpose so
that official checkpoints load and behave the same:

* :class:`BasicConv2d` is convolution + BatchNorm with **no** activation;
* SAM's edge weight is channel 1 of a softmax over the 32 edge channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv2d(nn.Sequential):
    """Conv (no bias) + BatchNorm; no activation, as in the released code."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)


class ChannelAttention(nn.Module):
    """``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``: one weight per channel, ``(B, C, 1, 1)``.

    The MLP is two 1x1 convolutions ``C -> C/ratio -> C`` shared by both poolings.
    """

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1, bias=False)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))


class SpatialAttention(nn.Module):
    """``sigmoid(conv7x7([mean_c(x), max_c(x)]))``: one weight per pixel, ``(B, 1, H, W)``."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv1(pooled))


class CIM(nn.Module):
    """Camouflage Identification Module on stage 1: channel then spatial attention.

    ``(B, C1, H/4, W/4) -> (B, C1, H/4, W/4)``; it keeps the low-level detail (edges,
    texture) of the first stage while suppressing background channels and pixels.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.ca = ChannelAttention(channels)
        self.sa = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ca(x) * x
        return self.sa(x) * x


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class CFM(nn.Module):
    """Cascaded Fusion Module: fuses stages 4, 3, 2 (all ``C`` channels) top-down.

    Inputs ``x4 (B, C, H/32, W/32)``, ``x3 (B, C, H/16, W/16)``, ``x2 (B, C, H/8, W/8)``;
    output ``(B, C, H/8, W/8)``. Multiplications gate each finer map with the coarser,
    more semantic ones; concatenations keep both.
    """

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.conv_upsample1 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample2 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample3 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample4 = BasicConv2d(c, c, 3, padding=1)
        self.conv_upsample5 = BasicConv2d(2 * c, 2 * c, 3, padding=1)
        self.conv_concat2 = BasicConv2d(2 * c, 2 * c, 3, padding=1)
        self.conv_concat3 = BasicConv2d(3 * c, 3 * c, 3, padding=1)
        self.conv4 = BasicConv2d(3 * c, c, 3, padding=1)

    def forward(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x3_gated = self.conv_upsample1(_up(x4)) * x3
        x2_gated = self.conv_upsample2(_up(_up(x4))) * self.conv_upsample3(_up(x3)) * x2
        x3_fused = self.conv_concat2(torch.cat([x3_gated, self.conv_upsample4(_up(x4))], dim=1))
        x2_fused = self.conv_concat3(torch.cat([x2_gated, self.conv_upsample5(_up(x3_fused))], dim=1))
        return self.conv4(x2_fused)


class GCN(nn.Module):
    """Graph convolution over ``N`` nodes with ``S`` states: ``(B, S, N) -> (B, S, N)``.

    Mixing across nodes (a 1x1 Conv1d over the node axis, minus the identity), then across
    states, then ReLU.
    """

    def __init__(self, num_state: int, num_node: int):
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)
        self.conv2 = nn.Conv1d(num_state, num_state, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x.permute(0, 2, 1)).permute(0, 2, 1) - x
        return F.relu(self.conv2(h))


class SAM(nn.Module):
    """Similarity Aggregation Module: graph reasoning between pixels and 16 region nodes.

    ``x (B, C, h, w)`` is the CFM output, ``edge (B, C, h, w)`` the CIM feature translated to
    ``C`` channels and halved in size. Pixels are softly assigned to ``mids x mids`` nodes
    (anchors pooled from the edge-weighted projection), node states are mixed by a
    :class:`GCN`, projected back to the pixels, and added to ``x``. Output ``(B, C, h, w)``.
    """

    def __init__(self, num_in: int = 32, plane_mid: int = 16, mids: int = 4):
        super().__init__()
        self.num_s, self.num_n, self.mids = plane_mid, mids * mids, mids
        self.conv_state = nn.Conv2d(num_in, self.num_s, kernel_size=1)
        self.conv_proj = nn.Conv2d(num_in, self.num_s, kernel_size=1)
        self.gcn = GCN(num_state=self.num_s, num_node=self.num_n)
        self.conv_extend = nn.Conv2d(self.num_s, num_in, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if edge.shape[-2:] != x.shape[-2:]:
            edge = F.interpolate(edge, size=(h, w), mode="nearest")
        edge_weight = edge.softmax(dim=1)[:, 1:2]  # (B, 1, h, w): the released code's choice
        state = self.conv_state(x).reshape(b, self.num_s, -1)  # (B, S, hw)
        proj = self.conv_proj(x)  # (B, S, h, w)
        anchors = F.adaptive_avg_pool2d(proj * edge_weight, self.mids + 2)[:, :, 1:-1, 1:-1]
        anchors = anchors.reshape(b, self.num_s, -1)  # (B, S, N)
        assign = torch.matmul(anchors.permute(0, 2, 1), proj.reshape(b, self.num_s, -1)).softmax(dim=1)  # (B, N, hw)
        nodes = torch.matmul(state, assign.permute(0, 2, 1))  # (B, S, N)
        back = torch.matmul(self.gcn(nodes), assign).reshape(b, self.num_s, h, w)
        return x + self.conv_extend(back)
