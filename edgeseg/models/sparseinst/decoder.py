"""SparseInst decoders: instance activation maps (IAM), group IAM and group IAM with softmax.

Module and parameter names follow the official checkpoints (``inst_branch.iam_conv``,
``inst_branch.fc``, ``mask_branch.projection``, ...). The group count comes from the config.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.sparseinst.config import DecoderConfig
from edgeseg.models.sparseinst.blocks import c2_msra_fill, c2_xavier_fill, conv3x3_stack

PRIOR_PROB = 0.01


def coordinate_features(x: torch.Tensor) -> torch.Tensor:
    """[B, 2, H, W] normalised (x, y) in [-1, 1]; ``arange`` keeps H/W dynamic on export."""
    h, w = x.shape[-2:]
    ys = -1.0 + 2.0 * torch.arange(h, device=x.device, dtype=torch.float32) / (h - 1)
    xs = -1.0 + 2.0 * torch.arange(w, device=x.device, dtype=torch.float32) / (w - 1)
    grid_y = ys[:, None].expand(h, w)
    grid_x = xs[None, :].expand(h, w)
    coords = torch.stack([grid_x, grid_y])[None].expand(x.shape[0], 2, h, w)
    return coords.to(x.dtype)


def _normalized_iam(iam: torch.Tensor, for_export: bool = False) -> torch.Tensor:
    """sigmoid(IAM) normalised to sum to one over pixels: [B, N, HW].

    ``for_export`` spells the sigmoid as 1 / (1 + exp(-x)): ONNX Runtime's Sigmoid kernel has an
    absolute error of ~1e-7, which the normalisation turns into a large relative error for a
    weak map (a sum of tiny probabilities); its Exp is accurate to ~1e-7 relative. Training keeps
    ``sigmoid`` (the explicit form has no finite gradient where exp(-x) overflows)."""
    prob = torch.reciprocal(1 + torch.exp(-iam)) if for_export else iam.sigmoid()
    prob = prob.flatten(2)
    return prob / prob.sum(-1, keepdim=True).clamp(min=1e-6)


class InstanceBranch(nn.Module):
    """IAM: one 3x3 conv predicts N activation maps; each map pools one instance feature."""

    def __init__(self, cfg: DecoderConfig, in_channels: int, num_classes: int, groups: int = 1):
        super().__init__()
        self.groups = groups
        dim = cfg.inst_dim
        self.inst_convs = conv3x3_stack(cfg.inst_convs, in_channels, dim, cfg.separable)
        self.iam_conv = nn.Conv2d(dim, cfg.num_masks * self.groups, 3, padding=1, groups=self.groups)
        width = dim * self.groups
        self.cls_score = nn.Linear(width, num_classes)
        self.mask_kernel = nn.Linear(width, cfg.kernel_dim)
        self.objectness = nn.Linear(width, 1)
        bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        for module in (self.iam_conv, self.cls_score):
            nn.init.constant_(module.bias, bias)
        for module in (self.iam_conv, self.cls_score, self.mask_kernel):
            nn.init.normal_(module.weight, std=0.01)
        nn.init.constant_(self.mask_kernel.bias, 0.0)

    for_export = False  # set by DeployModel

    def activation_weights(self, iam: torch.Tensor) -> torch.Tensor:
        return _normalized_iam(iam, self.for_export)

    def instance_features(self, inst: torch.Tensor) -> torch.Tensor:
        return inst

    def forward(self, features: torch.Tensor):
        features = self.inst_convs(features)
        iam = self.iam_conv(features)
        weights = self.activation_weights(iam)
        inst = torch.bmm(weights, features.flatten(2).transpose(1, 2))  # [B, N*G, C]
        inst = self.instance_features(inst)
        return self.cls_score(inst), self.mask_kernel(inst), self.objectness(inst), iam


class GroupInstanceBranch(InstanceBranch):
    """G-IAM: G groups of maps per instance; their features are concatenated and mixed by fc."""

    def __init__(self, cfg: DecoderConfig, in_channels: int, num_classes: int):
        super().__init__(cfg, in_channels, num_classes, groups=cfg.groups)
        width = cfg.inst_dim * self.groups
        self.fc = nn.Linear(width, width)
        c2_xavier_fill(self.fc)

    def instance_features(self, inst: torch.Tensor) -> torch.Tensor:
        b, ng, c = inst.shape
        g = self.groups
        inst = inst.reshape(b, g, ng // g, c).transpose(1, 2).reshape(b, ng // g, g * c)
        return F.relu(self.fc(inst))


class GroupInstanceSoftBranch(GroupInstanceBranch):
    """G-IAM with a softmax over pixels (plus a learnt bias) instead of normalised sigmoid."""

    def __init__(self, cfg: DecoderConfig, in_channels: int, num_classes: int):
        super().__init__(cfg, in_channels, num_classes)
        self.softmax_bias = nn.Parameter(torch.ones([1]))

    def activation_weights(self, iam: torch.Tensor) -> torch.Tensor:
        return F.softmax(iam.flatten(2) + self.softmax_bias, dim=-1)


class MaskBranch(nn.Module):
    def __init__(self, cfg: DecoderConfig, in_channels: int):
        super().__init__()
        self.mask_convs = conv3x3_stack(cfg.mask_convs, in_channels, cfg.mask_dim, cfg.separable)
        self.projection = nn.Conv2d(cfg.mask_dim, cfg.kernel_dim, 1)
        c2_msra_fill(self.projection)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.mask_convs(features))


BRANCHES = {
    "BaseIAMDecoder": InstanceBranch,
    "GroupIAMDecoder": GroupInstanceBranch,
    "GroupIAMSoftDecoder": GroupInstanceSoftBranch,
}


class IAMDecoder(nn.Module):
    """Coordinates + instance branch + mask branch; masks are the kernel-feature products."""

    def __init__(self, cfg: DecoderConfig, in_channels: int, num_classes: int):
        super().__init__()
        if cfg.name not in BRANCHES:
            raise ValueError(f"unknown decoder {cfg.name!r}; valid: {', '.join(BRANCHES)}")
        self.scale_factor = cfg.scale_factor
        self.inst_branch = BRANCHES[cfg.name](cfg, in_channels + 2, num_classes)
        self.mask_branch = MaskBranch(cfg, in_channels + 2)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.cat([coordinate_features(features), features], dim=1)
        logits, kernels, objectness, iam = self.inst_branch(features)
        mask_features = self.mask_branch(features)
        masks = torch.bmm(kernels, mask_features.flatten(2)).unflatten(2, mask_features.shape[-2:])
        masks = F.interpolate(masks, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return {"pred_logits": logits, "pred_masks": masks, "pred_scores": objectness, "pred_iam": iam}
