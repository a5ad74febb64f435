"""SOLOv2: backbone -> FPN -> grid head (category + dynamic kernels) and unified mask features."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError
from edgeseg.models.backbones import create_backbone, freeze_stages
from edgeseg.models.matrix_nms import KERNELS
from edgeseg.models.ranking import MAX_ITEMS
from edgeseg.models.solov2.head import GridHead
from edgeseg.models.solov2.inference import cell_strides, query_masks
from edgeseg.models.solov2.loss import MASK_LOSSES, solov2_losses
from edgeseg.models.solov2.neck import FPN, MaskFeatures


def check_config(own, where: str = "model.solov2") -> None:
    n = len(own.head_levels)
    if not (len(own.grids) == len(own.head_strides) == len(own.scale_ranges) == n) or n == 0:
        raise EdgesegError(f"{where}: head_levels, head_strides, grids and scale_ranges must have the same length")
    if any(not 0 <= i < len(own.in_features) for i in own.head_levels):
        raise EdgesegError(f"{where}.head_levels: indices into in_features (0..{len(own.in_features) - 1})")
    if any(len(r) != 2 or r[0] > r[1] for r in own.scale_ranges):
        raise EdgesegError(f"{where}.scale_ranges: pairs [low, high] with low <= high")
    if sum(s * s for s in own.grids) > MAX_ITEMS:
        raise EdgesegError(f"{where}.grids: at most {MAX_ITEMS} cells in all")
    if own.loss.mask_loss not in MASK_LOSSES:
        raise EdgesegError(f"{where}.loss.mask_loss: one of {', '.join(MASK_LOSSES)}")
    if own.nms_kernel not in KERNELS:
        raise EdgesegError(f"{where}.nms_kernel: one of {', '.join(KERNELS)}")


class SOLOv2(nn.Module):
    """``forward`` takes normalised, padded images [B, 3, H, W] (H, W multiples of 32).

    Raw outputs: ``logits`` [B, cells, C] per grid cell, ``kernels`` [B, cells, E], and
    ``mask_features`` [B, E, H/4, W/4]; ``deploy_outputs`` turns them into ``query_masks``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        own = cfg.method
        check_config(own)
        self.cfg = cfg
        bb = cfg.backbone
        self.backbone = create_backbone(bb.name, norm=bb.norm, weights=bb.weights or None,
                                        out_features=tuple(own.in_features), stride_in_1x1=bb.stride_in_1x1)
        freeze_stages(self.backbone, bb.freeze_at)
        self.fpn = FPN([self.backbone.out_channels[f] for f in own.in_features], own.fpn_channels)
        self.mask_features = MaskFeatures(len(own.in_features), own.fpn_channels, own.mask_channels, own.kernel_dim,
                                          own.norm_groups)
        self.head = GridHead(own.fpn_channels, own.head_channels, own.head_convs, own.kernel_dim, cfg.num_classes,
                             own.grids, own.norm_groups)
        self.register_buffer("cell_strides", cell_strides(own.grids, own.head_strides), persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        pyramid = self.fpn([features[f] for f in self.cfg.method.in_features])
        logits, kernels = self.head([pyramid[i] for i in self.cfg.method.head_levels])
        out = {"logits": logits, "kernels": kernels, "mask_features": self.mask_features(pyramid)}
        if self.training:  # the pairwise colour affinity of the projection loss reads the image
            out["images"] = images
        return out

    def losses(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        return solov2_losses(outputs, targets, self.cfg.method, self.cfg.num_classes)

    def deploy_outputs(self, outputs: dict) -> dict[str, torch.Tensor]:
        own = self.cfg.method
        return query_masks(outputs["logits"], outputs["kernels"], outputs["mask_features"], self.cell_strides,
                           own.candidates, self.cfg.inference.mask_threshold, own.nms_kernel, own.nms_sigma)
