"""Mask losses for weak or noisy targets, shared by the methods: a mask compared with a target
only through its projections on x and y (max: what a box says; mean: a little of the shape), and
a pairwise term that makes neighbouring cells of similar colour agree (BoxInst's), so that the
image, not the target, places the outline. FreeSOLO (Wang et al., CVPR 2022; written from the
paper) trains on noisy free masks with them; a full-image mask model trained from points takes
the box's projections and the colours from them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.preprocess import PIXEL_MEAN, PIXEL_STD

_D65 = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] [B, 3, H, W] -> CIE LAB (D65) [B, 3, H, W]."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = rgb.new_tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
    xyz = torch.einsum("ij,bjhw->bihw", m, linear) / rgb.new_tensor(_D65).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def neighbours(x: Tensor, dilation: int) -> Tensor:
    """[B, C, H, W] -> [B, C, 8, H, W]: each cell's 8 neighbours at ``dilation`` (zeros off the map)."""
    d = dilation
    padded = F.pad(x, (d, d, d, d))
    h, w = x.shape[-2:]
    shifts = [(dy, dx) for dy in (-d, 0, d) for dx in (-d, 0, d) if (dy, dx) != (0, 0)]
    return torch.stack([padded[..., d + dy: d + dy + h, d + dx: d + dx + w] for dy, dx in shifts], 2)


def colour_similarity(images: Tensor, stride: int, dilation: int) -> Tensor:
    """Normalised network inputs [B, 3, H, W] -> similarity [B, 8, H/stride, W/stride] of each
    stride cell's mean LAB colour with its 8 neighbours': exp(-|dLAB| / 2)."""
    mean = images.new_tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(PIXEL_STD).view(1, 3, 1, 1)
    rgb = ((images * std + mean) / 255.0).clamp(0, 1)
    lab = rgb_to_lab(F.avg_pool2d(rgb, stride))
    diff = lab[:, :, None] - neighbours(lab, dilation)
    return torch.exp(-diff.norm(dim=1) / 2)


def pairwise_loss(logits: Tensor, similar: Tensor, dilation: int) -> Tensor:
    """Per mask [P]: -log P(same label) over the edges ``similar`` [P, 8, h, w] (0/1) of logits [P, h, w]."""
    fg, bg = F.logsigmoid(logits)[:, None], F.logsigmoid(-logits)[:, None]
    fg_n, bg_n = neighbours(fg, dilation)[:, 0], neighbours(bg, dilation)[:, 0]
    same = torch.logsumexp(torch.stack([fg + fg_n, bg + bg_n]), 0)  # log(p_i p_j + (1-p_i)(1-p_j))
    return -(same * similar).sum((1, 2, 3)) / similar.sum((1, 2, 3)).clamp(min=1)


def box_cells(boxes: Tensor, h: int, w: int, stride: int) -> Tensor:
    """[P, h, w]: 1 where a stride cell's centre lies inside each xyxy box [P, 4] (input pixels)."""
    cy = (torch.arange(h, dtype=boxes.dtype, device=boxes.device) + 0.5) * stride
    cx = (torch.arange(w, dtype=boxes.dtype, device=boxes.device) + 0.5) * stride
    x0, y0, x1, y1 = (v[:, None, None] for v in boxes.unbind(-1))
    return ((cx >= x0) & (cx <= x1) & (cy[:, None] >= y0) & (cy[:, None] <= y1)).to(boxes.dtype)


def _dice(probs: Tensor, targets: Tensor) -> Tensor:
    inter = (probs * targets).sum(-1)
    return 1 - 2 * inter / ((probs * probs).sum(-1) + 0.001 + (targets * targets).sum(-1) + 0.001)


def projection_dice(probs: Tensor, targets: Tensor, reduce: str = "max") -> Tensor:
    """Dice per mask [P] between the projections of probabilities and targets [P, h, w] along rows
    plus along columns; ``reduce`` "max" (the extent: a box's projections are its target) or "mean"."""
    if reduce not in ("max", "mean"):
        raise ValueError(f"projection_dice: reduce must be max or mean, got {reduce!r}")
    project = (lambda x, d: x.amax(d)) if reduce == "max" else (lambda x, d: x.mean(d))
    return _dice(project(probs, -2), project(targets, -2)) + _dice(project(probs, -1), project(targets, -1))


def affinity_edges(images: Tensor, boxes: Tensor, stride: int, dilation: int, threshold: float) -> Tensor:
    """[P, 8, h, w]: the pairwise loss's edges for the P objects (xyxy ``boxes`` [P, 4], input
    pixels) of one normalised image [1, 3, H, W]: similar neighbours, from cells inside the box."""
    similar = colour_similarity(images.float(), stride, dilation)[0] >= threshold
    h, w = similar.shape[-2:]
    return similar.to(boxes.dtype)[None] * box_cells(boxes, h, w, stride)[:, None]
