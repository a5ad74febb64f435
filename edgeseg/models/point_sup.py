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

from edgeseg.models.mask_projection import box_cells
from edgeseg.models.point_sample import point_sample

SMOOTH = 1.0  # dice smoothing: a target whose labelled points are all background still scores


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


def labelled_sums(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Over the labelled points (label 0 or 1) of probabilities [..., P] and labels [..., P]:
    (sum p * t, sum p^2, sum t^2), the terms of a dice or (with binary p) an IoU."""
    valid = (labels >= 0).to(probs.dtype)
    t = labels.clamp(min=0).to(probs.dtype) * valid
    p = probs * valid
    return (p * t).sum(-1), (p * p).sum(-1), (t * t).sum(-1)


def labelled_dice(pt: Tensor, pp: Tensor, tt: Tensor, spill: Tensor) -> Tensor:
    """Dice over the labelled points (:func:`labelled_sums`) and the cells outside the box, whose
    label is 0 and whose ``spill`` (sum p^2) only adds to the denominator."""
    return (2 * pt + SMOOTH) / (pp + spill + tt + SMOOTH)


def points_in_boxes(points: Tensor, labels: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Points [K, P, 2] (input pixels) in the unit square of their boxes [K, 4] (xyxy), and their
    labels with points outside the box set to -1 (ignored), as detectron2's PointSup does for a
    RoI head: the RoI mask says nothing about pixels outside its box."""
    origin, size = boxes[:, None, :2], (boxes[:, None, 2:] - boxes[:, None, :2]).clamp(min=1e-6)
    coords = (points - origin) / size
    inside = ((coords >= 0) & (coords <= 1)).all(-1)
    return coords, torch.where(inside, labels, torch.full_like(labels, -1))


def outside_boxes(boxes: Tensor, h: int, w: int, stride: int) -> Tensor:
    """[M, h*w]: 1 for the cells of an [h, w] map at ``stride`` whose centre lies outside each xyxy
    box [M, 4] (input pixels). A full-image mask learns from these that the rest of the image is
    background: the points only say what lies inside the box."""
    return 1 - box_cells(boxes, h, w, stride).flatten(1)


def outside_bce(logits: Tensor, away: Tensor) -> Tensor:
    """BCE against background of full-image mask logits [K, hw] over their cells outside the box
    (``away`` [K, hw], 0/1), per mask summed and divided by the number of cells inside its box,
    then averaged over the masks. A mask that spills over one box's worth of cells at p = 0.5
    costs about as much as getting its points wrong, on any image size. A mean over the outside
    cells made that spill ~50x cheaper at 256 px (cheaper still on larger images), and
    point-trained SparseInst masks spilled ~12x more than mask-trained ones
    (benchmarks/pointsup_spill.py)."""
    inside = (away.shape[-1] - away.sum(-1)).clamp(min=1)
    per_mask = (F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * away).sum(-1)
    return (per_mask / inside).mean() if len(per_mask) else logits.sum() * 0.0


def full_mask_point_losses(logits: Tensor, points: Tensor, labels: Tensor, boxes: Tensor, stride: int
                           ) -> tuple[Tensor, Tensor]:
    """Full-image mask logits [K, h, w] at ``stride`` against their objects' points [K, P, 2]
    (input pixels), labels [K, P] and boxes [K, 4]: (dice per mask [K] over the labelled points
    and the cells outside the box, BCE: the mean over points plus :func:`outside_bce`)."""
    h, w = logits.shape[-2:]
    sampled = point_sample(logits, points.to(logits.dtype) / logits.new_tensor([w * stride, h * stride]))
    away = outside_boxes(boxes.to(logits.dtype), h, w, stride)
    flat = logits.flatten(1)
    pt, pp, tt = labelled_sums(sampled.sigmoid(), labels)
    spill = (flat.sigmoid() ** 2 * away).sum(-1)
    dice = 1 - labelled_dice(pt, pp, tt, spill)
    return dice, point_bce(sampled, labels) + outside_bce(flat, away)
