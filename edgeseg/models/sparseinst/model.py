"""SparseInst: backbone -> instance context encoder -> IAM decoder (CVPR 2022)."""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.config import ModelConfig
from edgeseg.models.backbones import create_backbone, freeze_stages
from edgeseg.models.sparseinst.decoder import IAMDecoder
from edgeseg.models.sparseinst.encoder import InstanceContextEncoder
from edgeseg.models.point_sup import trains_on_points
from edgeseg.models.sparseinst.loss import sparseinst_losses
from edgeseg.models.sparseinst.point_loss import sparseinst_point_losses


class SparseInst(nn.Module):
    """``forward`` takes normalised, padded images [B, 3, H, W] (H, W multiples of 32).

    Raw outputs: ``pred_logits`` [B, N, C], ``pred_masks`` [B, N, H/4, W/4] logits,
    ``pred_scores`` [B, N, 1] objectness logits. ``deploy_outputs`` turns them into the
    ``query_masks`` outputs that every runtime's shared postprocessing consumes.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        bb, own = cfg.backbone, cfg.method
        self.backbone = create_backbone(bb.name, norm=bb.norm, weights=bb.weights or None,
                                        out_features=tuple(own.encoder.in_features),
                                        stride_in_1x1=bb.stride_in_1x1)
        freeze_stages(self.backbone, bb.freeze_at)
        self.encoder = InstanceContextEncoder(own.encoder, self.backbone.out_channels)
        self.decoder = IAMDecoder(own.decoder, own.encoder.num_channels, cfg.num_classes)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.decoder(self.encoder(self.backbone(images)))
        if self.training and self.cfg.method.loss.point_pairwise > 0:  # the colour affinity reads the image
            out["images"] = images
        return out

    def losses(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        losses = sparseinst_point_losses if trains_on_points(targets) else sparseinst_losses
        return losses(outputs, targets, self.cfg.method.loss, self.cfg.num_classes)

    @staticmethod
    def deploy_outputs(outputs: dict) -> dict[str, torch.Tensor]:
        """The ``query_masks`` outputs: class scores [B, N, C] and stride-4 mask logits."""
        scores = torch.sqrt(outputs["pred_logits"].sigmoid() * outputs["pred_scores"].sigmoid())
        return {"scores": scores, "masks": outputs["pred_masks"]}

