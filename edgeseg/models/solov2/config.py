"""SOLOv2's own recipe section (``model.solov2``), defaulting to the published R-50 settings
(WXinlong/SOLO ``configs/solov2/solov2_r50_fpn_8gpu_1x.py``: FPN P2-P6 of 256 channels, grids
40/36/24/16/12, 4-conv heads of 512 channels, 256-channel unified mask features)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LossConfig:
    focal_weight: float = 1.0  # category branch: sigmoid focal loss over every grid cell
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    dice_weight: float = 3.0  # masks of the positive cells
    # A cell is positive for an object when it lies in the object's centre region: the box scaled
    # by sigma around the mask's centre of mass (at most the 3x3 cells around the centre cell).
    sigma: float = 0.2
    # "dice": the published loss on the mask itself. "projection" (FreeSOLO, for noisy masks such as
    # free masks): dice between the masks' max-projections on x and on y (what a box says), plus
    # ``mean_projection_weight`` x dice of their mean projections, plus the pairwise affinity loss.
    mask_loss: str = "dice"
    mean_projection_weight: float = 0.1
    # Pairwise affinity (projection loss only): neighbouring stride-4 cells inside the object's box
    # whose LAB colours are similar (exp(-|dLAB| / 2) >= threshold; 3x3 neighbours at this
    # dilation) should get the same label.
    pairwise_weight: float = 1.0
    pairwise_dilation: int = 2
    pairwise_threshold: float = 0.3
    # The masks of at most this many positive cells per batch (drawn uniformly, so the mean is the
    # same in expectation) go through the mask loss; 0: all. Dozens of small objects per image,
    # each positive in up to 9 cells on 2 levels, make a thousand masks per image otherwise.
    max_mask_cells: int = 0


@dataclass
class SOLOv2Config:
    in_features: list[str] = field(default_factory=lambda: ["res2", "res3", "res4", "res5"])
    fpn_channels: int = 256
    # The head's levels: indices into the FPN outputs (strides 4 * 2^i), each resized to its grid;
    # the published head reads P2 (halved), P3, P4, P5 and P6 (P5 pooled, then resized back to P5).
    head_levels: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 3])
    # Each level's stride as published: its masks must cover more stride-4 cells than this.
    head_strides: list[int] = field(default_factory=lambda: [8, 8, 16, 32, 32])
    grids: list[int] = field(default_factory=lambda: [40, 36, 24, 16, 12])
    # Objects whose sqrt(box area) in input pixels lies in a level's range are that level's.
    scale_ranges: list[list[float]] = field(default_factory=lambda: [[1, 96], [48, 192], [96, 384], [192, 768],
                                                                      [384, 2048]])
    head_convs: int = 4
    head_channels: int = 512
    mask_channels: int = 128  # the mask-feature branch's width per level
    kernel_dim: int = 256  # E: unified mask-feature channels = each cell's dynamic 1x1 kernel
    norm_groups: int = 32  # GroupNorm groups in the heads and the mask branch
    # Inference (in the exported graph): the best ``candidates`` cells go through the dynamic
    # convolution, maskness and Matrix NMS.
    candidates: int = 500
    nms_kernel: str = "gaussian"
    nms_sigma: float = 2.0
    loss: LossConfig = field(default_factory=LossConfig)
