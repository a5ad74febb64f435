"""SOLOv2's grid head: every level's features resized to its S x S grid; a category branch
(class logits per cell) and a kernel branch (with coordinates: each cell's dynamic 1x1 kernel)
share nothing but their input, and both share their weights across levels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.solov2.neck import conv_gn_relu, coord_features


class GridHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, convs: int, kernel_dim: int, num_classes: int,
                 grids: list[int], groups: int):
        super().__init__()
        self.grids = list(grids)
        self.kernel_tower = nn.Sequential(*[conv_gn_relu(in_channels + 2 if i == 0 else channels, channels, groups)
                                            for i in range(convs)])
        self.category_tower = nn.Sequential(*[conv_gn_relu(in_channels if i == 0 else channels, channels, groups)
                                              for i in range(convs)])
        self.kernel = nn.Conv2d(channels, kernel_dim, 3, padding=1)
        self.category = nn.Conv2d(channels, num_classes, 3, padding=1)
        for conv in (self.kernel, self.category):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.category.bias, -math.log((1 - 0.01) / 0.01))  # prior 0.01

    def forward(self, levels: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Per-level maps -> (class logits [B, cells, C], kernels [B, cells, E]); cells run over the
        levels' grids, row-major, finest level first."""
        logits, kernels = [], []
        for x, s in zip(levels, self.grids):
            with_coords = torch.cat([x, coord_features(x)], 1)
            k = self.kernel(self.kernel_tower(F.interpolate(with_coords, size=(s, s), mode="bilinear",
                                                            align_corners=False)))
            c = self.category(self.category_tower(F.interpolate(x, size=(s, s), mode="bilinear",
                                                                align_corners=False)))
            kernels.append(k.flatten(2).transpose(1, 2))
            logits.append(c.flatten(2).transpose(1, 2))
        return torch.cat(logits, 1), torch.cat(kernels, 1)
