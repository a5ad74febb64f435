"""SparseInst trained from points (PointSup): the mask path of :mod:`loss` with every mask
comparison made at the annotated points, plus what the box says for free.

A full-image mask (unlike a RoI mask, which only covers its box) is otherwise unconstrained away
from the object: the 10 points lie in the box, and nothing tells the mask that the rest of the
image is background. The annotation's box does: every mask cell whose centre lies outside it is
a background label, as if clicked. So each target's labels are its annotated points (inside the
box) and all mask cells outside its box; dice, BCE and the IoU estimate run over those labels.

Matching maximises ``dice^alpha * class_prob^beta`` (the full-mask matcher, dice over the labels,
with the class weighed by ``loss.point_matcher_beta``);
the matched masks get BCE over the annotated points (their mean) and over the cells outside the box
(:func:`~edgeseg.models.point_sup.outside_bce`: in units of the box's area) and dice over all labels;
objectness regresses the IoU over the labels, or 1 (``loss.point_objectness``). Classes: focal loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from edgeseg.errors import EdgesegError
from edgeseg.models.losses import mean_instances, sigmoid_focal_loss
from edgeseg.models.point_sample import point_sample
from edgeseg.models.mask_projection import affinity_edges, box_cells, pairwise_loss, projection_dice
from edgeseg.models.point_sup import labelled_dice, labelled_sums, outside_bce, outside_boxes, point_bce
from edgeseg.models.sparseinst.config import LossConfig

MASK_STRIDE = 4  # pred_masks are at 1/4 of the (padded) input
OBJECTNESS_TARGETS = ("iou", "none")


def match_points(masks: torch.Tensor, class_probs: torch.Tensor, target: dict, cfg: LossConfig):
    """One image's queries (mask logits [N, h, w] at ``MASK_STRIDE``, class probabilities [N, C])
    matched to its objects' points and boxes: maximum ``dice^alpha * class_prob^point_beta``, the dice
    over the points and the cells outside the box (label 0). Returns (query indices, object
    indices, the logits at every object's points [N, M, P], the cells outside each box [M, hw])."""
    n, h, w = masks.shape
    m, p = target["point_labels"].shape
    extent = masks.new_tensor([w * MASK_STRIDE, h * MASK_STRIDE])
    sampled = point_sample(masks, (target["points"].float() / extent).reshape(1, m * p, 2).expand(n, -1, -1))
    sampled = sampled.reshape(n, m, p)
    away = outside_boxes(target["boxes"].float(), h, w, MASK_STRIDE)
    with torch.no_grad():
        pt, pp, tt = labelled_sums(sampled.sigmoid(), target["point_labels"][None].expand(n, -1, -1))
        dice = labelled_dice(pt, pp, tt, masks.flatten(1).sigmoid().square() @ away.t())
        cost = dice ** cfg.matcher_alpha * class_probs[:, target["labels"]] ** cfg.point_matcher_beta
        rows, cols = linear_sum_assignment(cost.cpu().numpy(), maximize=True)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64), sampled, away


def sparseinst_point_losses(outputs: dict, targets: list[dict], cfg: LossConfig, num_classes: int) -> dict:
    """``targets[i]``: ``labels`` [n], ``boxes`` [n, 4], ``points`` [n, P, 2] input pixels,
    ``point_labels`` [n, P]."""
    if cfg.point_objectness not in OBJECTNESS_TARGETS:
        raise EdgesegError(f"model.sparseinst.loss.point_objectness: unknown '{cfg.point_objectness}'; "
                           f"valid: {', '.join(OBJECTNESS_TARGETS)}")
    outputs = {k: v.float() for k, v in outputs.items()}
    pred_masks, logits, scores = outputs["pred_masks"], outputs["pred_logits"], outputs["pred_scores"]
    h, w = pred_masks.shape[-2:]
    num_instances = mean_instances(targets, logits.device)

    idx, classes_of, at_points, point_labels, full, outside, boxes_of = [], [], [], [], [], [], []
    for b, t in enumerate(targets):
        if len(t["point_labels"]) == 0:
            continue
        rows, cols, sampled, away = match_points(pred_masks[b], logits[b].sigmoid(), t, cfg)
        flat = pred_masks[b].flatten(1)  # [N, hw]
        idx.append((torch.full_like(rows, b), rows))
        classes_of.append(t["labels"][cols])
        at_points.append(sampled[rows, cols])
        point_labels.append(t["point_labels"][cols])
        full.append(flat[rows])
        outside.append(away[cols])
        boxes_of.append(t["boxes"][cols].float())

    classes = torch.zeros_like(logits)
    if not idx:  # the same losses as any batch (their log and solver.ramp_losses read them by name)
        zero = pred_masks.sum() * 0.0 + scores.sum() * 0.0
        box_terms = {name: zero for name, weight in (("loss_box_projection", cfg.point_box_projection),
                                                     ("loss_pairwise", cfg.point_pairwise)) if weight > 0}
        return {"loss_ce": sigmoid_focal_loss(logits, classes) / num_instances * cfg.class_weight,
                "loss_mask": zero, "loss_dice": zero, "loss_objectness": zero, **box_terms}
    batch_idx, src_idx = (torch.cat(v) for v in zip(*idx))
    classes[batch_idx, src_idx, torch.cat(classes_of)] = 1.0
    src, tgt = torch.cat(at_points), torch.cat(point_labels)
    full, outside = torch.cat(full), torch.cat(outside)
    probs, full_probs = src.sigmoid(), full.sigmoid()
    pt, pp, tt = labelled_sums(probs, tgt)
    spill = (full_probs ** 2 * outside).sum(-1)
    dice = labelled_dice(pt, pp, tt, spill)
    with torch.no_grad():
        if cfg.point_objectness == "iou":  # binarised at 0.4, as the mask path's IoU
            hit, predicted = labelled_sums((probs >= 0.4).float(), tgt)[:2]  # binary: sum p^2 = sum p
            union = predicted + tt - hit + ((full_probs >= 0.4).float() * outside).sum(-1)
            quality = torch.where(union > 0, hit / union.clamp(min=1), torch.ones_like(union))
        else:
            quality = torch.ones_like(dice)
    losses = {
        "loss_ce": sigmoid_focal_loss(logits, classes) / num_instances * cfg.class_weight,
        "loss_objectness": F.binary_cross_entropy_with_logits(scores[batch_idx, src_idx, 0], quality)
        * cfg.objectness_weight,
        "loss_dice": (1 - dice).sum() / num_instances * cfg.mask_dice_weight,
        "loss_mask": (point_bce(src, tgt) + outside_bce(full, outside)) * cfg.mask_pixel_weight,
    }
    if cfg.point_box_projection > 0 or cfg.point_pairwise > 0:
        losses.update(box_losses(full.reshape(-1, h, w), boxes_of, [(int(b[0]), len(b)) for b, _ in idx],
                                 outputs.get("images"), cfg, num_instances))
    return losses


def box_losses(masks, boxes: list[torch.Tensor], image_of_counts: list[tuple[int, int]], images, cfg: LossConfig,
               num_instances: float) -> dict:
    """What the box says about the matched full-image mask logits [K, h, w]: its extent (projection
    dice against the box) and, with the image, colour affinity inside it (pairwise)."""
    out = {}
    all_boxes = torch.cat(boxes)
    if cfg.point_box_projection > 0:
        target = box_cells(all_boxes, *masks.shape[-2:], MASK_STRIDE)
        out["loss_box_projection"] = projection_dice(masks.sigmoid(), target).sum() / num_instances * cfg.point_box_projection
    if cfg.point_pairwise > 0:
        per_image, start = [], 0
        for (b, count), image_boxes in zip(image_of_counts, boxes):
            edges = affinity_edges(images[b:b + 1], image_boxes, MASK_STRIDE, cfg.pairwise_dilation, cfg.pairwise_threshold)
            per_image.append(pairwise_loss(masks[start:start + count], edges, cfg.pairwise_dilation))
            start += count
        out["loss_pairwise"] = torch.cat(per_image).sum() / num_instances * cfg.point_pairwise
    return out
