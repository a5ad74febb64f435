"""AdaMixer's own recipe section (``model.adamixer``), defaulting to the published R-50 1x COCO
settings (MCG-NJU/AdaMixer ``configs/adamixer/adamixer_r50_1x_coco.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MaskHeadConfig:
    """An optional RoI mask head: it makes the model an instance segmenter (output ``roi_masks``)."""

    enabled: bool = False
    feature: int = 0  # which neck level it pools from (0: the first of in_features, stride 4)
    pooler_size: int = 14  # RoIAlign output; the deconv doubles it to the mask size
    convs: int = 4
    channels: int = 256
    mask_weight: float = 1.0  # BCE on the matched queries' masks
    dice_weight: float = 1.0


@dataclass
class LossConfig:
    # Hungarian matching costs (focal class cost, L1 on normalised cxcywh, generalized IoU).
    cost_class: float = 2.0
    cost_l1: float = 5.0
    cost_giou: float = 2.0
    # Losses at every stage: focal (alpha, gamma) for classes, L1 on normalised xyxy, GIoU.
    class_weight: float = 2.0
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class AdaMixerConfig:
    in_features: list[str] = field(default_factory=lambda: ["res2", "res3", "res4", "res5"])
    feat_channels: int = 256  # d of the ChannelMapping neck; equal to content_dim in every recipe
    num_queries: int = 100  # N
    num_stages: int = 6  # S, no weight sharing
    content_dim: int = 256  # d
    heads: int = 8  # self-attention heads
    ffn_dim: int = 2048
    groups: int = 4  # G
    in_points: int = 32  # P_in sampling points per group
    out_points: int = 128  # P_out after spatial mixing
    iof_bias: bool = True  # the log-IoF attention bias between queries' boxes
    # Ablations of the paper: mixing matrices generated from each query (true) or static learned
    # ones; sampling in 3D over all levels (-1) or from this one level index only.
    adaptive_mixing: bool = True
    single_level: int = -1
    mask_head: MaskHeadConfig = field(default_factory=MaskHeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
