"""SOLOv2's training objective as published: sigmoid focal loss over every grid cell for the
category branch (divided by the positives + 1), dice on the dynamic masks of the positive cells.

With ``loss.mask_loss: projection`` (FreeSOLO, for noisy targets such as free masks) the dice
compares the masks' projections instead, and a pairwise colour-affinity term joins
(:mod:`edgeseg.models.mask_projection`).

Trained from points (PointSup), cells are assigned from the boxes and the masks are compared at
the annotated points and with the cells outside the box as background
(:func:`edgeseg.models.point_sup.full_mask_point_losses`): dice over those labels, plus their BCE.

``loss.max_mask_cells`` caps how many positive cells' masks a batch computes (a uniform draw over
the batch); the category branch always sees every cell."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.models.losses import sigmoid_focal_loss
from edgeseg.models.point_sup import full_mask_point_losses, trains_on_points
from edgeseg.models.solov2.config import SOLOv2Config
from edgeseg.models.mask_projection import affinity_edges, pairwise_loss, projection_dice
from edgeseg.models.solov2.targets import assign, objects

MASK_LOSSES = ("dice", "projection")

MASK_STRIDE = 4  # the unified mask features are at 1/4 of the (padded) input


def dice_loss(probs: Tensor, targets: Tensor) -> Tensor:
    """Per mask [P] from probabilities and targets [P, ...] (SOLO's: squares in the denominator)."""
    probs, targets = probs.flatten(1), targets.flatten(1)
    inter = (probs * targets).sum(1)
    return 1 - 2 * inter / ((probs * probs).sum(1) + 0.001 + (targets * targets).sum(1) + 0.001)


def dynamic_masks(kernels: Tensor, features: Tensor) -> Tensor:
    """Mask logits [P, h, w] of kernels [P, E] applied as 1x1 convolutions to features [E, h, w]."""
    return (kernels @ features.flatten(1)).reshape(-1, *features.shape[-2:])


def sample_cells(positives: list[Tensor], limit: int) -> list[Tensor]:
    """At most ``limit`` (0: no limit) of the batch's positive cells (per image, sorted), drawn
    uniformly over the whole batch so that the mean over them estimates the mean over all."""
    total = sum(len(c) for c in positives)
    if limit <= 0 or total <= limit:
        return positives
    keep = torch.zeros(total, dtype=torch.bool)
    keep[torch.randperm(total)[:limit]] = True
    out, start = [], 0
    for cells in positives:
        out.append(cells[keep[start:start + len(cells)]])
        start += len(cells)
    return out


def solov2_losses(outputs: dict, targets: list[dict], cfg: SOLOv2Config, num_classes: int) -> dict:
    """``targets[i]``: ``labels`` [n], and ``masks`` [n, H, W] at the padded input size or (from
    points) ``boxes`` [n, 4], ``points`` [n, P, 2] and ``point_labels`` [n, P]."""
    logits, kernels, features = (outputs[k].float() for k in ("logits", "kernels", "mask_features"))
    input_hw = (features.shape[-2] * MASK_STRIDE, features.shape[-1] * MASK_STRIDE)
    from_points = trains_on_points(targets)
    found = [objects(t) for t in targets]  # (boxes, centres) per image
    assigned = [assign(*o, t["labels"], input_hw, cfg.grids, cfg.scale_ranges, cfg.loss.sigma, num_classes)
                for o, t in zip(found, targets)]
    onehot = torch.stack([F.one_hot(lab, num_classes + 1)[:, :num_classes] for lab, _ in assigned]).to(logits)
    l = cfg.loss
    projection = l.mask_loss == "projection" and not from_points
    positives = [torch.nonzero(owner >= 0).flatten() for _, owner in assigned]
    total = sum(len(c) for c in positives)
    chosen = sample_cells(positives, l.max_mask_cells)
    dice, bce, mean_projection, pairwise = [], [], [], []
    for b, ((_, owner), target, cells) in enumerate(zip(assigned, targets, chosen)):
        if len(cells) == 0:
            continue
        which = owner[cells].to(logits.device)
        cells = cells.to(logits.device)
        pred = dynamic_masks(kernels[b, cells], features[b])
        if from_points:
            d, c = full_mask_point_losses(pred, target["points"][which], target["point_labels"][which],
                                          target["boxes"][which], MASK_STRIDE)
            dice.append(d)
            bce.append(c * len(cells))
        else:
            gt = F.interpolate(target["masks"][None].float(), size=features.shape[-2:], mode="bilinear",
                               align_corners=False)[0][which]
            probs = pred.sigmoid()
            if not projection:
                dice.append(dice_loss(probs, gt))
                continue
            dice.append(projection_dice(probs, gt, "max"))
            mean_projection.append(projection_dice(probs, gt, "mean"))
            if l.pairwise_weight > 0:
                edges = affinity_edges(outputs["images"][b:b + 1], found[b][0][which.cpu()].to(pred), MASK_STRIDE,
                                       l.pairwise_dilation, l.pairwise_threshold)
                pairwise.append(pairwise_loss(pred, edges, l.pairwise_dilation))
    count = sum(len(d) for d in dice)
    zero = kernels.sum() * 0.0 + features.sum() * 0.0
    losses = {"loss_cate": sigmoid_focal_loss(logits, onehot, l.focal_alpha, l.focal_gamma) / (total + 1) * l.focal_weight,
              "loss_dice": torch.cat(dice).mean() * l.dice_weight if count else zero}
    if from_points:
        losses["loss_mask"] = sum(bce) / count if count else zero
    if projection:
        losses["loss_mean_projection"] = torch.cat(mean_projection).mean() * l.mean_projection_weight if count else zero
        if l.pairwise_weight > 0:
            losses["loss_pairwise"] = torch.cat(pairwise).mean() * l.pairwise_weight if count else zero
    return losses
