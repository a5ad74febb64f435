"""Mask Transfiner's recipe section (``model.transfiner``): AdaMixer's keys (the detector and its
coarse 28x28 RoI mask head) plus ``refine``. Defaults follow the official code (SysCV/transfiner)
where it has a counterpart; node counts are static here (see ``quadtree.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeseg.models.adamixer.config import AdaMixerConfig, MaskHeadConfig


@dataclass
class RefineConfig:
    refined: int = 10  # R: the top-scoring queries refined per image at inference (official: 10)
    train_refined: int = 30  # matched queries refined per batch in training (official: 30)
    # 28x28 cells chosen per quadtree level, most incoherent first: level 28 refines cells[0] cells,
    # level 56 the 4 children of each of the top cells[1], level 112 the 16 children of the top
    # cells[2] (the official code: every child of a cell over a threshold; ~150 per level in training).
    cells: list[int] = field(default_factory=lambda: [64, 32, 16])
    # How cells are chosen: "incoherence" (the predicted incoherence map), "uncertain" (coarse
    # probability nearest 0.5) or "random" (a fixed random order): the paper's ablation.
    select: str = "incoherence"
    mixer: str = "transformer"  # or "mlp": each node alone (the paper's per-point MLP ablation)
    # Score width over which a node's refinement (and a detection's, next to the R-th) fades in
    # above the selection's cut: runtime noise then cannot flip a node from refined to coarse (an
    # up to 0.34 jump in a mask probability with a hard cut). 0: the paper's hard cut.
    fade: float = 0.05
    dim: int = 256
    layers: int = 3
    heads: int = 4
    ffn_dim: int = 2048
    # A stride-2 conv stem on the image, sampled at the nodes with the finest neck level: the
    # detail the 56 and 112 levels need (the official code pools P2 features for them).
    fine_channels: int = 32
    incoherence_convs: int = 4
    incoherence_channels: int = 128
    incoherence_weight: float = 0.5  # dice + BCE against the incoherence target
    refine_weight: float = 1.0  # BCE of every token (nodes and 14x14 context) against the target mask


@dataclass
class TransfinerConfig(AdaMixerConfig):
    mask_head: MaskHeadConfig = field(default_factory=lambda: MaskHeadConfig(enabled=True))
    refine: RefineConfig = field(default_factory=RefineConfig)
