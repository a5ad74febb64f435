"""SparseInst trained from points (PointSup): the mask path of :mod:`loss` with every mask
comparison made at the annotated points.

Matching maximises ``point_dice^alpha * class_prob^beta`` (the full-mask matcher with dice read at
the target's points); the matched masks get BCE and dice over their labelled points; objectness
regresses the point IoU estimate, or 1 (``loss.point_objectness``). Classes: focal loss as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from edgeseg.errors import EdgesegError
from edgeseg.models.losses import mean_instances, sigmoid_focal_loss
from edgeseg.models.point_sup import pairwise_point_dice, point_bce, point_dice, point_iou, point_sample
from edgeseg.models.sparseinst.config import LossConfig

MASK_STRIDE = 4  # pred_masks are at 1/4 of the (padded) input
OBJECTNESS_TARGETS = ("iou", "none")


def sparseinst_point_losses(outputs: dict, targets: list[dict], cfg: LossConfig, num_classes: int) -> dict:
    """``targets[i]``: ``labels`` [n], ``points`` [n, P, 2] input pixels, ``point_labels`` [n, P]."""
    if cfg.point_objectness not in OBJECTNESS_TARGETS:
        raise EdgesegError(f"model.sparseinst.loss.point_objectness: unknown '{cfg.point_objectness}'; "
                           f"valid: {', '.join(OBJECTNESS_TARGETS)}")
    outputs = {k: v.float() for k, v in outputs.items()}
    pred_masks, logits, scores = outputs["pred_masks"], outputs["pred_logits"], outputs["pred_scores"]
    h, w = pred_masks.shape[-2:]
    extent = pred_masks.new_tensor([w * MASK_STRIDE, h * MASK_STRIDE])
    num_instances = mean_instances(targets, logits.device)

    batch_idx, src_idx, matched_labels, src_logits, tgt_labels = [], [], [], [], []
    for b, t in enumerate(targets):
        m, p = t["point_labels"].shape
        if m == 0 or p == 0:
            continue
        coords = (t["points"].float() / extent).reshape(1, m * p, 2).expand(pred_masks.shape[1], -1, -1)
        sampled = point_sample(pred_masks[b], coords).reshape(-1, m, p)  # [N, M, P]
        with torch.no_grad():
            dice = pairwise_point_dice(sampled.sigmoid(), t["point_labels"])
            cost = dice ** cfg.matcher_alpha * logits[b].sigmoid()[:, t["labels"]] ** cfg.matcher_beta
            rows, cols = linear_sum_assignment(cost.cpu().numpy(), maximize=True)
        rows, cols = torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
        batch_idx.append(torch.full_like(rows, b))
        src_idx.append(rows)
        matched_labels.append(t["labels"][cols])
        src_logits.append(sampled[rows, cols])
        tgt_labels.append(t["point_labels"][cols])

    classes = torch.zeros_like(logits)
    if not src_idx:
        zero = pred_masks.sum() * 0.0 + scores.sum() * 0.0
        return {"loss_ce": sigmoid_focal_loss(logits, classes) / num_instances * cfg.class_weight,
                "loss_mask": zero, "loss_dice": zero, "loss_objectness": zero}
    batch_idx, src_idx = torch.cat(batch_idx), torch.cat(src_idx)
    classes[batch_idx, src_idx, torch.cat(matched_labels)] = 1.0
    src, tgt = torch.cat(src_logits), torch.cat(tgt_labels)
    probs = src.sigmoid()
    with torch.no_grad():
        quality = point_iou(probs, tgt) if cfg.point_objectness == "iou" else torch.ones_like(probs[:, 0])
    return {
        "loss_ce": sigmoid_focal_loss(logits, classes) / num_instances * cfg.class_weight,
        "loss_objectness": F.binary_cross_entropy_with_logits(scores[batch_idx, src_idx, 0], quality)
        * cfg.objectness_weight,
        "loss_dice": (1 - point_dice(probs, tgt)).sum() / num_instances * cfg.mask_dice_weight,
        "loss_mask": point_bce(src, tgt) * cfg.mask_pixel_weight,
    }
