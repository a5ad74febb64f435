"""Mask Transfiner on AdaMixer: the detector and its 28x28 mask head as AdaMixer (same parameter
names: an AdaMixer checkpoint's weights load into it), an incoherence head, and the quadtree
refinement of the top-R detections to 112x112 masks (``roi_masks`` at S = 112)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError
from edgeseg.models.adamixer.loss import adamixer_losses
from edgeseg.models.adamixer.mask_head import mask_losses, mask_targets
from edgeseg.models.adamixer.model import AdaMixer
from edgeseg.models.point_sample import point_sample, sample_features
from edgeseg.models.roi_align import roi_align
from edgeseg.models.transfiner.incoherence import IncoherenceHead, incoherence_losses, incoherence_targets
from edgeseg.models.ranking import MAX_ITEMS, fade_in, top_indices
from edgeseg.models.transfiner.quadtree import (GRID, LEVELS, assemble, cell_centres, grid_centres, in_image,
                                                level_nodes, to_logits, upsample)
from edgeseg.models.transfiner.refiner import FineStem, Refiner

SELECTIONS = ("incoherence", "uncertain", "random")
MIXERS = ("transformer", "mlp")
CONTEXT = 14  # the RoI features' grid: every cell is a context token


def in_unit_square(xy: Tensor, input_hw) -> Tensor:
    """Input pixels -> the input's unit square. Divided by the sizes themselves (not a tensor built
    from them), so that an exported graph keeps them dynamic."""
    return torch.cat([xy[..., :1] / input_hw[1], xy[..., 1:] / input_hw[0]], -1)


@torch.no_grad()
def token_targets(masks: Tensor, boxes: Tensor, nodes: list[Tensor]) -> Tensor:
    """Every token's target [K, T]: the share of its cell covered by the mask (RoIAlign of the
    full-resolution masks [K, H, W] in boxes [K, 4] at the token's grid: 14 for the context, 28, 56
    and 112 per level), as the coarse head is trained. A point label at the cell's centre instead
    (binary): levels assembled from perfect values of it beat the 28x28 GT RoIAlign mask less often
    than from area values (`benchmarks/transfiner_oracle.py`, nodes 96/48/32: mask IoU 0.952 against 0.965)."""
    masks = masks[:, None].float()
    grids = [roi_align(masks, boxes[:, None], size, 1.0).flatten(1) for size in (CONTEXT,) + LEVELS]
    return torch.cat([grids[0]] + [grid.gather(1, index) for grid, index in zip(grids[1:], nodes)], 1)


class MaskTransfiner(AdaMixer):
    """``forward`` as AdaMixer's, with ``masks`` [B, N, 112, 112] logits at inference: the top
    ``refine.refined`` queries by class score refined, the others their coarse mask upsampled."""

    def __init__(self, cfg: ModelConfig):
        own = cfg.method
        r = own.refine
        if not own.mask_head.enabled:
            raise EdgesegError("model.transfiner.mask_head.enabled: must be true (Transfiner refines its masks)")
        if r.select not in SELECTIONS or r.mixer not in MIXERS:
            raise EdgesegError(f"model.transfiner.refine: select must be one of {', '.join(SELECTIONS)} and "
                               f"mixer one of {', '.join(MIXERS)}")
        if len(r.cells) != 3 or not all(0 < c <= GRID * GRID for c in r.cells):
            raise EdgesegError(f"model.transfiner.refine.cells: three counts from 1 to {GRID * GRID}, got {r.cells}")
        if own.num_queries > MAX_ITEMS:  # the ranking keys order at most this many indices exactly
            raise EdgesegError(f"model.transfiner.num_queries {own.num_queries}: at most {MAX_ITEMS}")
        if r.dim % r.heads or r.dim % 4:
            raise EdgesegError("model.transfiner.refine.dim: must divide by heads and by 4")
        if 2 * own.mask_head.pooler_size != GRID:
            raise EdgesegError(f"model.transfiner.mask_head.pooler_size: must be {GRID // 2} (28x28 coarse masks)")
        super().__init__(cfg)
        self.incoherence_head = IncoherenceHead(own.feat_channels + own.mask_head.channels, r.incoherence_convs,
                                                r.incoherence_channels)
        self.fine = FineStem(r.fine_channels)
        self.refiner = Refiner(r, own.feat_channels + r.fine_channels + 1)
        if r.select == "random":  # a fixed order, the same in training, inference and every runtime
            self.register_buffer("random_scores", torch.rand(GRID * GRID, generator=torch.Generator().manual_seed(0)))

    def forward(self, images: Tensor) -> dict:
        out, features = self.detect(images)
        own = self.cfg.method
        feature = features[own.mask_head.feature]
        fine = self.fine(images)
        if self.training:  # the losses run the heads on matched queries only
            out.update(mask_feature=feature, fine=fine)
            return out
        boxes = out["boxes"][-1]
        b, n = boxes.shape[:2]
        r = min(own.refine.refined, n)
        size = LEVELS[-1]
        roi, hidden, coarse = self.mask_head.parts(feature, boxes)  # every query once: [B*N, ...]
        masks = upsample(coarse[:, 0].sigmoid(), size).reshape(b, n, size, size)  # probabilities, see assemble
        scores = out["logits"][-1].sigmoid().amax(-1)
        top = top_indices(scores, r)  # [B, R]
        rows = (top + torch.arange(b, device=top.device)[:, None] * n).reshape(-1)  # the top-R rows of [B*N]
        top_boxes = boxes.gather(1, top[..., None].expand(b, r, 4))
        incoherence = self.incoherence_head(roi[rows], hidden[rows])
        refined = self.refine(coarse[rows, 0], incoherence, top_boxes.reshape(-1, 4), feature, fine, images.shape[-2:])[0]
        index = top[..., None, None].expand(b, r, size, size)
        # the detections next to the R-th fade from refined to coarse, as nodes do (see fade_in)
        weight = fade_in(scores, r, own.refine.fade).gather(1, top)[..., None, None]
        refined = torch.lerp(masks.gather(1, index), refined.reshape(b, r, size, size), weight)
        out["masks"] = to_logits(masks.scatter(1, index, refined))
        return out

    def refine(self, coarse: Tensor, incoherence: Tensor, boxes: Tensor, feature: Tensor, fine: Tensor, input_hw):
        """Refine K = B * R RoIs, image-major with R per image of ``feature`` [B, C, H, W]: coarse
        logits [K, 28, 28], incoherence [K, 28, 28], boxes [K, 4] (input pixels of an ``input_hw``
        input) -> (masks [K, 112, 112] probabilities, token logits [K, T], the nodes of each level
        (see ``level_nodes``))."""
        cfg = self.cfg.method.refine
        k, b = coarse.shape[0], feature.shape[0]
        probs = coarse.sigmoid().detach()
        if cfg.select == "incoherence":
            scores = incoherence.detach().flatten(1)
        elif cfg.select == "uncertain":
            scores = 1 - (2 * probs - 1).abs().flatten(1)
        else:
            scores = self.random_scores.expand(k, -1)
        nodes, weights = level_nodes(scores, list(cfg.cells), cfg.fade)
        uv = torch.cat([grid_centres(CONTEXT, k, coarse.device)]
                       + [cell_centres(index, grid) for index, grid in zip(nodes, LEVELS)], 1)  # [K, T, 2]
        context = torch.ones(k, CONTEXT * CONTEXT, dtype=probs.dtype, device=probs.device)
        xy = in_image(uv, boxes)
        coords = in_unit_square(xy, input_hw).reshape(b, -1, 2)
        sampled = torch.cat([sample_features(feature, coords), sample_features(fine, coords)], -1)
        tokens = torch.cat([sampled.reshape(k, uv.shape[1], -1), point_sample(probs, uv)[..., None]], -1)
        logits = self.refiner(tokens, uv, torch.cat([context] + weights, 1))
        levels = logits[:, CONTEXT * CONTEXT :].split([index.shape[1] for index in nodes], 1)
        return assemble(coarse, nodes, list(levels), weights), logits, nodes

    def losses(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        """AdaMixer's box losses, the coarse mask losses of every matched query, and incoherence
        (dice + BCE) and refinement (BCE of every token against its cell's share of the target mask)
        on the first ``refine.train_refined`` of them; the mask head runs once per matched query."""
        own = self.cfg.method
        cfg = own.refine
        losses, matches, num_instances = adamixer_losses(outputs, targets, own.loss)
        boxes = outputs["boxes"][-1].detach()
        feature, fine = outputs["mask_feature"], outputs["fine"]
        h, w = outputs["input_hw"]
        budget = cfg.train_refined
        coarse_all, wanted_masks, incoherence, wanted_incoherence, logits, wanted = [], [], [], [], [], []
        for b, (queries, gts) in enumerate(matches):
            if len(queries) == 0:
                continue
            box = boxes[b, queries]
            masks = targets[b]["masks"][gts].float()
            roi, hidden, coarse = self.mask_head.parts(feature[b : b + 1], box[None])
            coarse_all.append(coarse[:, 0])
            wanted_masks.append(mask_targets(masks, box, GRID))
            k = min(budget, len(queries))
            if k == 0:
                continue
            budget -= k
            inc = self.incoherence_head(roi[:k], hidden[:k])
            incoherence.append(inc)
            wanted_incoherence.append(incoherence_targets(masks[:k], box[:k]))
            _, token_logits, nodes = self.refine(coarse[:k, 0], inc, box[:k], feature[b : b + 1], fine[b : b + 1], (h, w))
            logits.append(token_logits)
            wanted.append(token_targets(masks[:k], box[:k], nodes))
        if not logits:
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            losses.update(loss_mask=zero, loss_mask_dice=zero, loss_incoherence=zero, loss_refine=zero)
            return losses
        losses.update(mask_losses(torch.cat(coarse_all), torch.cat(wanted_masks), num_instances, own.mask_head))
        losses["loss_incoherence"] = incoherence_losses(torch.cat(incoherence), torch.cat(wanted_incoherence),
                                                        cfg.incoherence_weight)
        losses["loss_refine"] = F.binary_cross_entropy_with_logits(torch.cat(logits), torch.cat(wanted)) * cfg.refine_weight
        return losses
