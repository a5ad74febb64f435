"""Box operations in plain torch (torchvision cannot be installed here): conversions, pairwise
overlaps and generalized IoU. Boxes are xyxy unless a name says otherwise; all functions
broadcast over leading batch dimensions and export to ONNX (no data-dependent shapes)."""

from __future__ import annotations

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def pairwise_intersection(a: Tensor, b: Tensor) -> Tensor:
    """[..., N, 4] x [..., M, 4] -> [..., N, M] intersection areas."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def pairwise_iof(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Intersection over the first box's area (mmdet ``bbox_overlaps(mode='iof')``): [..., N, M]."""
    return pairwise_intersection(a, b) / box_area(a).clamp(min=eps)[..., :, None]


def pairwise_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """(IoU, union) of every pair: [..., N, M] each."""
    inter = pairwise_intersection(a, b)
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return inter / union.clamp(min=eps), union


def pairwise_giou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Generalized IoU (Rezatofighi et al. 2019) of every pair: [..., N, M]."""
    iou, union = pairwise_iou(a, b, eps)
    lt = torch.minimum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.maximum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    hull = (wh[..., 0] * wh[..., 1]).clamp(min=eps)
    return iou - (hull - union) / hull


def paired_giou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Generalized IoU of a[i] with b[i]: [N, 4] x [N, 4] -> [N]."""
    inter_wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    union = box_area(a) + box_area(b) - inter
    iou = inter / union.clamp(min=eps)
    hull_wh = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0)
    hull = (hull_wh[:, 0] * hull_wh[:, 1]).clamp(min=eps)
    return iou - (hull - union) / hull
