"""Matrix NMS (Wang et al., SOLOv2, NeurIPS 2020): every mask's score decays by how much it
overlaps higher-scored masks of its class, compensated by how much those were themselves
suppressed; all in matrix operations (no loop, no data-dependent shapes), so it runs inside an
exported graph."""

from __future__ import annotations

import torch
from torch import Tensor

KERNELS = ("gaussian", "linear")


def matrix_nms(masks: Tensor, labels: Tensor, scores: Tensor, kernel: str = "gaussian", sigma: float = 2.0) -> Tensor:
    """Decayed scores [..., N] of binary (or soft) masks [..., N, H*W] sorted by ``scores`` [..., N],
    high first, with class ``labels`` [..., N] (leading dims: a batch). Gaussian: decay_j = min_i exp(-sigma * (iou_ij^2 - comp_i^2)) over
    higher-scored masks i of j's class, comp_i = i's largest IoU with a mask scored above it;
    linear: min_i (1 - iou_ij) / (1 - comp_i)."""
    if kernel not in KERNELS:
        raise ValueError(f"matrix_nms: unknown kernel {kernel!r}; valid: {', '.join(KERNELS)}")
    n = masks.shape[-2]
    masks = masks.to(scores.dtype)
    areas = masks.sum(-1)
    inter = masks @ masks.transpose(-1, -2)
    union = areas[..., :, None] + areas[..., None, :] - inter
    upper = torch.ones(n, n, dtype=torch.bool, device=masks.device).triu(1)  # i scored above j
    same = (labels[..., :, None] == labels[..., None, :]) & upper
    iou = torch.where(same, inter / union.clamp(min=1e-6), torch.zeros_like(inter))
    compensate = iou.amax(-2)[..., :, None]  # [i, 1]: the most i overlaps anything above it
    if kernel == "gaussian":
        decay = torch.exp(-sigma * (iou ** 2 - compensate ** 2))
    else:
        decay = (1 - iou) / (1 - compensate).clamp(min=1e-6)
    decay = torch.where(upper, decay, torch.ones_like(decay))  # only masks above j decay j
    return scores * decay.amin(-2)
