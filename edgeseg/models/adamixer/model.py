"""AdaMixer: backbone -> ChannelMapping neck -> initial queries -> S decoder stages (CVPR 2022),
with an optional RoI mask head. Parameter names are the official mmdet ones (``neck.*``,
``rpn_head.*``, ``roi_head.bbox_head.{stage}.*``), so official checkpoints load by name."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError
from edgeseg.models.adamixer.loss import adamixer_losses
from edgeseg.models.adamixer.mask_head import RoIMaskHead, mask_losses, mask_targets
from edgeseg.models.adamixer.neck import ChannelMapping, InitialQueries
from edgeseg.models.adamixer.stage import DecoderStage, decode_box
from edgeseg.models.backbones import FEATURE_STRIDES, create_backbone, freeze_stages
from edgeseg.models.point_sample import point_sample
from edgeseg.models.point_sup import point_bce, points_in_boxes, trains_on_points


class RoIHead(nn.Module):
    """Holds the stages as ``bbox_head.{i}`` (the official ``roi_head`` layout)."""

    def __init__(self, cfg, num_classes: int):
        super().__init__()
        self.bbox_head = nn.ModuleList(DecoderStage(cfg, num_classes) for _ in range(cfg.num_stages))


class AdaMixer(nn.Module):
    """``forward`` takes normalised, padded images [B, 3, H, W] (H, W multiples of 32).

    Raw outputs: per stage ``logits`` [B, N, C] and ``boxes`` [B, N, 4] (xyxy input pixels) as
    lists, the final ``xyzr``, and ``masks`` [B, N, S, S] logits with the mask head.
    ``deploy_outputs`` turns them into the ``boxes`` or ``roi_masks`` outputs.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        bb, own = cfg.backbone, cfg.method
        if own.content_dim % own.heads or own.feat_channels % own.groups or own.content_dim % 4:
            raise EdgesegError("model.adamixer: content_dim must divide by heads and 4, feat_channels by groups")
        if own.single_level >= len(own.in_features):
            raise EdgesegError(f"model.adamixer.single_level {own.single_level}: only {len(own.in_features)} levels")
        self.backbone = create_backbone(bb.name, norm=bb.norm, weights=bb.weights or None,
                                        out_features=tuple(own.in_features), stride_in_1x1=bb.stride_in_1x1)
        freeze_stages(self.backbone, bb.freeze_at)
        self.in_features = list(own.in_features)
        self.strides = [FEATURE_STRIDES[f] for f in self.in_features]
        self.neck = ChannelMapping([self.backbone.out_channels[f] for f in self.in_features], own.feat_channels)
        self.rpn_head = InitialQueries(own.num_queries, own.content_dim)
        self.roi_head = RoIHead(own, cfg.num_classes)
        self.mask_head = None
        if own.mask_head.enabled:
            level = own.mask_head.feature
            self.mask_head = RoIMaskHead(own.mask_head, own.feat_channels, self.strides[level])

    def forward(self, images: torch.Tensor) -> dict:
        out, features = self.detect(images)
        if self.mask_head is not None:
            mask_feature = features[self.cfg.method.mask_head.feature]
            if self.training:  # the loss runs the head on matched queries only
                out["mask_feature"] = mask_feature
            else:
                out["masks"] = self.mask_head(mask_feature, out["boxes"][-1])
        return out

    def detect(self, images: torch.Tensor) -> tuple[dict, list[torch.Tensor]]:
        """The detector: (per-stage ``logits`` and ``boxes``, final ``xyzr``, ``input_hw``; the
        neck's feature levels)."""
        feats = self.backbone(images)
        features = self.neck([feats[f] for f in self.in_features])
        xyzr, query = self.rpn_head(images)
        logits, boxes = [], []
        for stage in self.roi_head.bbox_head:
            stage_logits, xyzr_new, query = stage(features, self.strides, query, xyzr)
            logits.append(stage_logits)
            boxes.append(decode_box(xyzr_new))
            # Each stage's box is the next one's fixed reference: no gradient flows between them.
            xyzr = xyzr_new.detach() if self.training else xyzr_new
        return {"logits": logits, "boxes": boxes, "xyzr": xyzr, "input_hw": tuple(images.shape[-2:])}, features

    def losses(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        own = self.cfg.method
        losses, matches, num_instances = adamixer_losses(outputs, targets, own.loss)
        if self.mask_head is not None:
            losses.update(matched_mask_losses(self.mask_head, outputs, targets, matches, num_instances,
                                              own.mask_head))
        return losses

    @staticmethod
    def deploy_outputs(outputs: dict) -> dict[str, torch.Tensor]:
        """``boxes``: class probabilities [B, N, C] and xyxy boxes; ``roi_masks`` adds masks."""
        out = {"scores": outputs["logits"][-1].sigmoid(), "boxes": outputs["boxes"][-1]}
        if "masks" in outputs:
            out["masks"] = outputs["masks"]
        return out


def matched_mask_losses(head: RoIMaskHead, outputs: dict, targets: list[dict], matches, num_instances: float,
                        cfg) -> dict[str, torch.Tensor]:
    """Mask losses of the final stage's matched queries, each at its (detached) predicted box:
    against the target mask resampled into the box, or, trained from points (PointSup), BCE at
    the annotated points that fall inside the box."""
    boxes = outputs["boxes"][-1].detach()
    feature = outputs["mask_feature"]
    on_points = trains_on_points(targets)
    logits, wanted = [], []
    for b, (queries, gts) in enumerate(matches):
        if len(queries) == 0:
            continue
        roi_logits = head(feature[b : b + 1], boxes[b : b + 1, queries])[0]
        if on_points:
            coords, labels = points_in_boxes(targets[b]["points"][gts].float(), targets[b]["point_labels"][gts],
                                             boxes[b, queries])
            logits.append(point_sample(roi_logits, coords))
            wanted.append(labels)
        else:
            logits.append(roi_logits)
            wanted.append(mask_targets(targets[b]["masks"][gts], boxes[b, queries], head.mask_size))
    if not logits:
        zero = sum(p.sum() for p in head.parameters()) * 0.0 + feature.sum() * 0.0
        return {"loss_mask": zero} if on_points else {"loss_mask": zero, "loss_mask_dice": zero}
    if on_points:  # the paper's RoI-head loss: BCE over labelled points only
        return {"loss_mask": point_bce(torch.cat(logits), torch.cat(wanted)) * cfg.mask_weight}
    return mask_losses(torch.cat(logits), torch.cat(wanted), num_instances, cfg)
