"""Incoherent regions: where a mask loses information to downsampling (Mask Transfiner, Sec. 3.1),
their ground truth and the head that predicts them from the RoI features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.layers import msra_init_
from edgeseg.models.roi_align import roi_align

TARGET_THRESHOLD = 0.01  # on the half-resolution residue (official)
CROP_THRESHOLD = 0.05  # after resampling into the box at 28x28 (official)


@torch.no_grad()
def incoherence_targets(masks: Tensor, boxes: Tensor, size: int = 28) -> Tensor:
    """Binary [M, size, size] targets: |m - up(down(m))| of each full-resolution mask [M, H, W]
    (halved and restored bilinearly), halved again, marked where >= 0.01, then resampled into its
    box [M, 4] (xyxy input pixels) by RoIAlign and marked where >= 0.05."""
    if len(masks) == 0:
        return masks.new_zeros((0, size, size), dtype=torch.float32)
    m = masks[:, None].float()
    h, w = m.shape[-2:]
    half = (h // 2, w // 2)
    restored = F.interpolate(F.interpolate(m, size=half, mode="bilinear", align_corners=False), size=(h, w),
                             mode="bilinear", align_corners=False)
    residue = F.interpolate((m - restored).abs(), size=half, mode="bilinear", align_corners=False)
    marked = (residue >= TARGET_THRESHOLD).float()
    return (roi_align(marked, boxes[:, None], size, 2.0)[:, 0] >= CROP_THRESHOLD).float()


class IncoherenceHead(nn.Module):
    """The detached RoI features with the mask head's conv features -> 3x3 convs -> 2x deconv ->
    1x1 -> incoherence probability at twice the RoI size (28x28). The official head adds the two;
    here they are concatenated, as their widths may differ (``in_channels`` is the sum)."""

    def __init__(self, in_channels: int, convs: int, channels: int):
        super().__init__()
        layers, ch = [], in_channels
        for _ in range(convs):
            layers += [nn.Conv2d(ch, channels, 3, padding=1), nn.ReLU()]
            ch = channels
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(ch, channels, 2, stride=2)
        self.predictor = nn.Conv2d(channels, 1, 1)
        msra_init_(self)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, roi: Tensor, hidden: Tensor) -> Tensor:
        """roi [K, C, S, S] (its gradient stops here), hidden [K, C', S, S] -> probabilities [K, 2S, 2S]."""
        x = self.convs(torch.cat([roi.detach(), hidden], 1))
        return self.predictor(self.deconv(x)).sigmoid()[:, 0]


def incoherence_losses(probs: Tensor, targets: Tensor, weight: float) -> Tensor:
    """Dice (smoothed, per RoI, averaged) + BCE on probabilities, as the official head."""
    p, t = probs.flatten(1), targets.flatten(1)
    dice = 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)
    return (dice.mean() + F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), t)) * weight
