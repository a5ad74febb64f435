"""Point supervision (PointSup, Cheng et al., CVPR 2022): mask logits read at labelled points.

A mask model trains from points by sampling its mask logits bilinearly where the annotator
clicked (PointRend's ``point_sample``) and comparing them with the 0/1 labels; label -1 (padding,
or a point that an augmentation moved out of the image or out of the predicted box) is ignored.
Nothing here changes a network or its exported graph: only the loss reads points. Sampling
itself is :func:`edgeseg.models.point_sample.point_sample`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def trains_on_points(targets: list[dict]) -> bool:
    """True when a batch supervises masks with points: it has points and no masks (a dataset with
    both gives masks, the stronger supervision). Every image of a batch has the same fields."""
    return "points" in targets[0] and "masks" not in targets[0]


def point_bce(logits: Tensor, labels: Tensor) -> Tensor:
    """BCE averaged over labelled points (label 0 or 1) of [K, P] logits; 0 (with a gradient path)
    when no point is labelled."""
    valid = labels >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[valid], labels[valid].to(logits.dtype))


def point_dice(probs: Tensor, labels: Tensor, smooth: float = 1.0) -> Tensor:
    """Dice between probabilities [..., P] and labels [..., P] over the labelled points, smoothed so
    that an instance whose labelled points are all background is scored too (1 when the
    probabilities there are 0)."""
    valid = (labels >= 0).to(probs.dtype)
    target = labels.clamp(min=0).to(probs.dtype) * valid
    p = probs * valid
    return (2 * (p * target).sum(-1) + smooth) / ((p * p).sum(-1) + (target * target).sum(-1) + smooth)


def pairwise_point_dice(probs: Tensor, labels: Tensor, smooth: float = 1.0) -> Tensor:
    """Dice of every prediction with every target: probs [N, M, P] (prediction n read at target m's
    points), labels [M, P] -> [N, M]."""
    return point_dice(probs, labels.unsqueeze(0).expand_as(probs), smooth)


def point_iou(probs: Tensor, labels: Tensor, threshold: float = 0.4) -> Tensor:
    """IoU of the binarised prediction with the labels over the labelled points ([K, P] -> [K]):
    an estimate of the mask IoU from the points alone; 1 when neither marks any point."""
    valid = (labels >= 0).to(probs.dtype)
    pred = (probs >= threshold).to(probs.dtype) * valid
    target = labels.clamp(min=0).to(probs.dtype) * valid
    inter = (pred * target).sum(-1)
    union = (pred + target - pred * target).sum(-1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def points_in_boxes(points: Tensor, labels: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Points [K, P, 2] (input pixels) in the unit square of their boxes [K, 4] (xyxy), and their
    labels with points outside the box set to -1 (ignored), as detectron2's PointSup does for a
    RoI head: the RoI mask says nothing about pixels outside its box."""
    origin, size = boxes[:, None, :2], (boxes[:, None, 2:] - boxes[:, None, :2]).clamp(min=1e-6)
    coords = (points - origin) / size
    inside = ((coords >= 0) & (coords <= 1)).all(-1)
    return coords, torch.where(inside, labels, torch.full_like(labels, -1))
