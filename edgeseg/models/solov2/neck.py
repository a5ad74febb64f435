"""SOLOv2's feature pyramid and its unified mask-feature branch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.layers import Conv2d


def coord_features(x: Tensor) -> Tensor:
    """[B, 2, H, W]: x and y from -1 to 1 over the map (CoordConv). Built from ``arange`` of the
    map's own size, so that exported graphs keep dynamic sizes."""
    h, w = x.shape[-2:]
    xs = torch.arange(w, dtype=x.dtype, device=x.device) * (2.0 / max(w - 1, 1)) - 1.0
    ys = torch.arange(h, dtype=x.dtype, device=x.device) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])
    return grid[None].expand(x.shape[0], 2, h, w)


def conv_gn_relu(cin: int, cout: int, groups: int) -> Conv2d:
    return Conv2d(cin, cout, 3, padding=1, bias=False, norm=nn.GroupNorm(min(groups, cout), cout),
                  activation=F.relu)


class FPN(nn.Module):
    """Lateral 1x1 convs, top-down nearest upsampling and 3x3 output convs: one map of
    ``channels`` per input level, finest first."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:],
                                                              mode="nearest")
        return [conv(x) for conv, x in zip(self.output, laterals)]


class MaskFeatures(nn.Module):
    """The unified mask features at the finest level's stride: level i goes through i
    conv-GN-ReLU + 2x upsampling steps (one conv for the finest), the coarsest with coordinates
    appended; the sum is projected to ``kernel_dim`` channels by a 1x1 conv-GN-ReLU."""

    def __init__(self, levels: int, in_channels: int, channels: int, kernel_dim: int, groups: int):
        super().__init__()
        self.branches = nn.ModuleList()
        for i in range(levels):
            first = in_channels + (2 if i == levels - 1 and i > 0 else 0)
            convs = [conv_gn_relu(first if k == 0 else channels, channels, groups) for k in range(max(i, 1))]
            self.branches.append(nn.ModuleList(convs))
        self.project = Conv2d(channels, kernel_dim, 1, bias=False, norm=nn.GroupNorm(min(groups, kernel_dim), kernel_dim),
                              activation=F.relu)

    def forward(self, features: list[Tensor]) -> Tensor:
        out = None
        for i, (x, convs) in enumerate(zip(features, self.branches)):
            if i == len(self.branches) - 1 and i > 0:
                x = torch.cat([x, coord_features(x)], 1)
            for conv in convs:
                x = conv(x)
                if i > 0:
                    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            out = x if out is None else out + x
        return self.project(out)
