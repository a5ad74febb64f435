"""RoIAlign (He et al. 2017, ``aligned=True``) with ``grid_sample`` (or its MatMul form, see
:mod:`edgeseg.models.bilinear`): torchvision's op cannot be installed here, and ``grid_sample``
exports to every runtime (ONNX opset >= 16)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.models.bilinear import sample_product_grid


def roi_align(features: Tensor, boxes: Tensor, size: int, stride: float, sampling_ratio: int = 2) -> Tensor:
    """Per box, a ``size`` x ``size`` grid of features averaged over ``sampling_ratio``^2 bilinear
    samples per bin.

    features [B, C, H, W] at ``stride`` pixels per cell; boxes [B, N, 4] xyxy in input pixels.
    Returns [B * N, C, size, size] (box-major within each image). Samples outside the map read
    zeros, as ``grid_sample`` pads (torchvision clamps to the border instead).
    """
    b, c, h, w = features.shape
    n = boxes.shape[1]
    k = size * sampling_ratio
    # sample centres in the box's unit square: (i + 0.5) / k
    steps = (torch.arange(k, dtype=boxes.dtype, device=boxes.device) + 0.5) / k
    x0, y0, x1, y1 = boxes.unbind(-1)  # [B, N]
    xs = x0[..., None] + (x1 - x0)[..., None] * steps  # [B, N, k] input pixels
    ys = y0[..., None] + (y1 - y0)[..., None] * steps
    # input pixel x lies at feature coordinate x / stride - 0.5; grid_sample (align_corners=False)
    # reads normalised g = (coordinate + 0.5) / W * 2 - 1 = x / (stride * W) * 2 - 1
    gx = xs / (stride * w) * 2 - 1
    gy = ys / (stride * h) * 2 - 1
    out = sample_product_grid(features, gx, gy).reshape(b * n, c, k, k)
    return F.avg_pool2d(out, sampling_ratio) if sampling_ratio > 1 else out
