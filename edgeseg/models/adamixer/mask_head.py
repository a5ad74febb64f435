"""The optional RoI mask head: RoIAlign of each query's final box on one neck level, a few 3x3
convs, a 2x deconv and a 1x1 conv to one class-agnostic mask logit map per query (Mask R-CNN's
head; Mask Transfiner refines its output). Trained on matched queries with BCE + dice against
the target mask resampled into the predicted box."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.layers import msra_init_
from edgeseg.models.roi_align import roi_align


class RoIMaskHead(nn.Module):
    def __init__(self, cfg, in_channels: int, stride: int):
        super().__init__()
        self.size, self.stride = cfg.pooler_size, stride
        layers, ch = [], in_channels
        for _ in range(cfg.convs):
            layers += [nn.Conv2d(ch, cfg.channels, 3, padding=1), nn.ReLU()]
            ch = cfg.channels
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(ch, cfg.channels, 2, stride=2)
        self.predictor = nn.Conv2d(cfg.channels, 1, 1)
        msra_init_(self)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    @property
    def mask_size(self) -> int:
        return 2 * self.size

    def forward(self, feature: Tensor, boxes: Tensor) -> Tensor:
        """feature [B, C, H, W], boxes [B, N, 4] xyxy input pixels -> logits [B, N, 2S, 2S]."""
        b, n = boxes.shape[:2]
        return self.parts(feature, boxes)[2].reshape(b, n, self.mask_size, self.mask_size)

    def parts(self, feature: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(RoI features [B*N, C, S, S], the convs' output [B*N, channels, S, S], logits [B*N, 1, 2S, 2S]):
        what Mask Transfiner's incoherence head and refiner read besides the coarse mask."""
        roi = roi_align(feature, boxes, self.size, self.stride)
        hidden = self.convs(roi)
        return roi, hidden, self.predictor(F.relu(self.deconv(hidden)))


@torch.no_grad()
def mask_targets(masks: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Target masks [M, H, W] (input pixels) resampled into their predicted boxes [M, 4] at
    ``size`` x ``size`` (RoIAlign of the binary mask, as Mask R-CNN), in [0, 1]."""
    if len(masks) == 0:
        return masks.new_zeros((0, size, size), dtype=torch.float32)
    grid = roi_align(masks[:, None].float(), boxes[:, None], size, 1.0)  # each mask is its own image
    return grid[:, 0]


def mask_losses(logits: Tensor, targets: Tensor, num_instances: float, cfg) -> dict[str, Tensor]:
    """BCE (mean over pixels of matched queries) and dice (summed per instance / instances)."""
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    probs = logits.sigmoid().flatten(1)
    t = targets.flatten(1)
    dice = 1 - (2 * (probs * t).sum(-1) + 1) / (probs.sum(-1) + t.sum(-1) + 1)
    return {"loss_mask": bce * cfg.mask_weight, "loss_mask_dice": dice.sum() / num_instances * cfg.dice_weight}
