"""SparseInst training objective as published.

Hungarian matching on ``dice^alpha * class_prob^beta``; sigmoid focal loss for classes over all
queries; dice + BCE on matched masks; objectness regressed (BCE) to the IoU of the matched mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from edgeseg.models.losses import mean_instances, sigmoid_focal_loss
from edgeseg.models.sparseinst.config import LossConfig

__all__ = ["dice_loss", "hungarian_match", "mask_iou", "sigmoid_focal_loss", "sparseinst_losses"]


def dice_score(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice between [N, P] mask logits and [M, P] targets -> [N, M]."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.t()
    denominator = (probs * probs).sum(-1)[:, None] + (targets * targets).sum(-1)
    return numerator / (denominator + 1e-4)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = (probs * probs).sum(-1) + (targets * targets).sum(-1)
    return (1 - numerator / (denominator + 1e-4)).sum()


def mask_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of paired masks, predictions binarised at 0.4 as in the official code."""
    pred = (logits.sigmoid() >= 0.4).float()
    gt = (targets > 0.5).float()
    inter = (pred * gt).sum(-1)
    return inter / (gt.sum(-1) + pred.sum(-1) - inter + 1e-6)


def resize_targets(masks: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(masks[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def hungarian_match(outputs, labels: list[torch.Tensor], masks: list[torch.Tensor], alpha: float, beta: float):
    """Per image: (query indices, target indices) maximising dice^alpha * prob^beta.

    ``masks[i]`` are image i's target masks at the prediction's resolution, flattened.
    """
    pred_masks = outputs["pred_masks"]
    probs = outputs["pred_logits"].sigmoid()
    indices = []
    for b, (lab, tgt) in enumerate(zip(labels, masks)):
        if len(lab) == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            indices.append((empty, empty))
            continue
        dice = dice_score(pred_masks[b].flatten(1), tgt)
        cost = dice ** alpha * probs[b][:, lab] ** beta
        rows, cols = linear_sum_assignment(cost.cpu().numpy(), maximize=True)
        indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return indices


def sparseinst_losses(outputs: dict, targets: list[dict], cfg: LossConfig, num_classes: int) -> dict:
    """Weighted losses. ``targets[i]``: ``labels`` [n] int64, ``masks`` [n, H, W] at input size."""
    outputs = {k: v.float() for k, v in outputs.items()}
    pred_masks = outputs["pred_masks"]
    labels_per_image = [t["labels"] for t in targets]
    with torch.no_grad():
        masks_per_image = [resize_targets(t["masks"].float(), pred_masks.shape[-2:]).flatten(1) for t in targets]
    indices = hungarian_match(outputs, labels_per_image, masks_per_image, cfg.matcher_alpha, cfg.matcher_beta)
    num_instances = mean_instances(targets, outputs["pred_logits"].device)
    logits = outputs["pred_logits"]

    batch_idx = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
    src_idx = torch.cat([src for src, _ in indices])
    labels = torch.zeros_like(logits)
    if len(src_idx):
        matched = torch.cat([lab[tgt] for lab, (_, tgt) in zip(labels_per_image, indices)])
        labels[batch_idx, src_idx, matched] = 1.0
    losses = {"loss_ce": sigmoid_focal_loss(logits, labels) / num_instances * cfg.class_weight}

    scores = outputs["pred_scores"]
    if len(src_idx) == 0:
        zero = pred_masks.sum() * 0.0 + scores.sum() * 0.0
        losses.update(loss_mask=zero, loss_dice=zero, loss_objectness=zero)
        return losses
    src = pred_masks[batch_idx, src_idx].flatten(1)
    tgt = torch.cat([m[j] for m, (_, j) in zip(masks_per_image, indices)])
    iou = mask_iou(src.detach(), tgt)
    losses["loss_objectness"] = (
        F.binary_cross_entropy_with_logits(scores[batch_idx, src_idx, 0], iou) * cfg.objectness_weight
    )
    losses["loss_dice"] = dice_loss(src, tgt) / num_instances * cfg.mask_dice_weight
    losses["loss_mask"] = F.binary_cross_entropy_with_logits(src, tgt) * cfg.mask_pixel_weight
    return losses
