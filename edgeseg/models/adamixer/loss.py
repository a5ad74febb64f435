"""AdaMixer's training objective as published: at every stage (weight 1 each), one-to-one
Hungarian matching with costs focal 2.0, L1 on normalised cxcywh 5.0 and GIoU 2.0; losses focal
(alpha 0.25, gamma 2) 2.0 over all queries, L1 on normalised xyxy 5.0 and GIoU 2.0 on matched
queries, each divided by the number of target boxes."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from edgeseg.models.box_ops import pairwise_giou, paired_giou, xyxy_to_cxcywh
from edgeseg.models.losses import focal_cost, mean_instances, sigmoid_focal_loss


@torch.no_grad()
def match(logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, gt_boxes: torch.Tensor,
          whwh: torch.Tensor, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(query indices, target indices) of one image minimising the weighted matching cost."""
    if len(labels) == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    cost_l1 = torch.cdist(xyxy_to_cxcywh(boxes / whwh), xyxy_to_cxcywh(gt_boxes / whwh), p=1)
    cost = (cfg.cost_class * focal_cost(logits, labels, cfg.focal_alpha, cfg.focal_gamma)
            + cfg.cost_l1 * cost_l1 - cfg.cost_giou * pairwise_giou(boxes, gt_boxes))
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def stage_losses(logits, boxes, targets, whwh, num_instances: float, cfg):
    """One stage's losses and its matches [(queries, targets)] per image."""
    matches = [match(logits[b].detach().float(), boxes[b].detach().float(), t["labels"], t["boxes"].float(), whwh, cfg)
               for b, t in enumerate(targets)]
    onehot = torch.zeros_like(logits)
    for b, ((queries, gts), t) in enumerate(zip(matches, targets)):
        onehot[b, queries, t["labels"][gts]] = 1.0
    out = {"loss_cls": sigmoid_focal_loss(logits, onehot, cfg.focal_alpha, cfg.focal_gamma) / num_instances
           * cfg.class_weight}
    pred = torch.cat([boxes[b, q] for b, (q, _) in enumerate(matches)])
    gt = torch.cat([t["boxes"][g].float() for (_, g), t in zip(matches, targets)])
    if len(pred) == 0:
        zero = boxes.sum() * 0.0
        return {**out, "loss_l1": zero, "loss_giou": zero}, matches
    out["loss_l1"] = (pred / whwh - gt / whwh).abs().sum() / num_instances * cfg.l1_weight
    out["loss_giou"] = (1 - paired_giou(pred, gt)).sum() / num_instances * cfg.giou_weight
    return out, matches


def adamixer_losses(outputs: dict, targets: list[dict], cfg):
    """(losses summed over stages with per-stage names, the last stage's matches, instances)."""
    h, w = outputs["input_hw"]
    whwh = torch.tensor([w, h, w, h], dtype=torch.float32)
    num_instances = mean_instances(targets, whwh.device)
    losses = {}
    for stage, (logits, boxes) in enumerate(zip(outputs["logits"], outputs["boxes"])):
        stage_out, matches = stage_losses(logits.float(), boxes.float(), targets, whwh, num_instances, cfg)
        losses.update({f"s{stage}.{k}": v for k, v in stage_out.items()})
    return losses, matches, num_instances
