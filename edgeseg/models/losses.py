"""Loss terms shared by the methods: sigmoid focal loss (Lin et al. 2017) and its matching cost."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def sigmoid_focal_loss(logits, targets, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Summed over every element (callers divide by their number of instances)."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * ce * (1 - p_t) ** gamma).sum()


def focal_cost(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
               eps: float = 1e-12) -> torch.Tensor:
    """Matching cost [N, M] of predicting class ``labels[j]`` with query i (DETR-family focal
    cost: the focal loss of a positive minus that of a negative)."""
    p = logits.sigmoid()
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    return pos[:, labels] - neg[:, labels]


def mean_instances(targets, device) -> float:
    """The number of target instances per process (at least 1): what losses are divided by."""
    count = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
    world = 1
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        world = dist.get_world_size()
    return max(count.item() / world, 1.0)
