"""SparseInst's InstanceContextEncoder: FPN top-down path + pyramid pooling + fusion (stride 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.sparseinst.config import EncoderConfig
from edgeseg.models.sparseinst.blocks import c2_msra_fill, c2_xavier_fill, conv3x3


def pooling_matrix(length: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """[bins, length] matrix whose rows average the same spans as AdaptiveAvgPool.

    Bin i covers [floor(i*L/b), ceil((i+1)*L/b)). Built from ``arange`` so it stays dynamic
    in exported graphs; ``P_h @ X @ P_w^T`` equals adaptive average pooling for any size.
    """
    idx = torch.arange(length, device=like.device)
    i = torch.arange(bins, device=like.device)[:, None]
    start = (i * length) // bins
    end = ((i + 1) * length + bins - 1) // bins
    inside = ((idx >= start) & (idx < end)).to(like.dtype)
    return inside / inside.sum(-1, keepdim=True)


class AdaptivePool(nn.Module):
    """Adaptive average pooling; for export written as two matmuls (same numbers, but converters
    and runtimes see plain MatMul instead of AdaptiveAvgPool, which several cannot map)."""

    for_export = False  # set by DeployModel

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.for_export:
            return F.adaptive_avg_pool2d(x, self.size)
        ph = pooling_matrix(x.shape[-2], self.size, x)
        pw = pooling_matrix(x.shape[-1], self.size, x)
        return ph @ x @ pw.transpose(0, 1)


class PyramidPoolingModule(nn.Module):
    def __init__(self, in_channels: int, channels: int, sizes=(1, 2, 3, 6)):
        super().__init__()
        # Key names follow the official checkpoints: stages.{i}.1 is the 1x1 conv.
        self.stages = nn.ModuleList(
            [nn.Sequential(AdaptivePool(size), nn.Conv2d(in_channels, channels, 1)) for size in sizes]
        )
        self.bottleneck = nn.Conv2d(in_channels + len(sizes) * channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        priors = [
            F.interpolate(F.relu(stage(x)), size=(h, w), mode="bilinear", align_corners=False)
            for stage in self.stages
        ]
        return F.relu(self.bottleneck(torch.cat(priors + [x], dim=1)))


class InstanceContextEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, in_channels: dict[str, int]):
        super().__init__()
        self.in_features = list(cfg.in_features)
        channels = cfg.num_channels
        # Official order: index 0 is the coarsest level (res5).
        widths = [in_channels[name] for name in reversed(self.in_features)]
        self.fpn_laterals = nn.ModuleList([nn.Conv2d(c, channels, 1) for c in widths])
        self.fpn_outputs = nn.ModuleList([conv3x3(channels, channels, cfg.separable) for _ in widths])
        for conv in self.fpn_laterals:
            c2_xavier_fill(conv)
        if not cfg.separable:
            for conv in self.fpn_outputs:
                c2_xavier_fill(conv)
        self.ppm = PyramidPoolingModule(channels, channels // 4)
        self.fusion = nn.Conv2d(channels * len(widths), channels, 1)
        c2_msra_fill(self.fusion)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = [features[name] for name in reversed(self.in_features)]
        prev = self.ppm(self.fpn_laterals[0](feats[0]))
        outputs = [self.fpn_outputs[0](prev)]
        for feat, lateral, output in zip(feats[1:], self.fpn_laterals[1:], self.fpn_outputs[1:]):
            prev = lateral(feat) + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            outputs.insert(0, output(prev))
        size = outputs[0].shape[-2:]
        resized = [outputs[0]] + [
            F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in outputs[1:]
        ]
        return self.fusion(torch.cat(resized, dim=1))
