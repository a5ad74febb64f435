"""Bilinear sampling of feature maps at continuous points: ``F.grid_sample`` (bilinear, zero
padding, ``align_corners=False``), or the same sums as matrix products.

Every sampling in edgeseg (RoIAlign, AdaMixer's 3D sampling, point features) goes through here.
ONNX Runtime and OpenVINO have a native GridSample; litert-torch lowers ``grid_sample`` into
per-element GATHER_ND/SELECT chains that XNNPACK does not run (AdaMixer on TFLite: 940 ms against
42 ms on OpenVINO). Bilinear weights are separable: a sample at (x, y) is
``sum_h sum_w t(y - h) t(x - w) F[h, w]`` with the tent ``t(d) = max(0, 1 - |d|)``, zero for cells
outside the map exactly as zero padding. So the TFLite export traces the models under
:func:`matmul_sampling`, where sampling is two (batched) MatMuls over tent weights, which XNNPACK
runs well; training and the other runtimes keep ``grid_sample``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

_MATMUL = False


@contextmanager
def matmul_sampling(enabled: bool = True):
    """Within the block, sampling is traced as MatMuls over tent weights (see the module doc)."""
    global _MATMUL
    previous, _MATMUL = _MATMUL, enabled
    try:
        yield
    finally:
        _MATMUL = previous


def tent_weights(coords: Tensor, size: int) -> Tensor:
    """[..., size] bilinear weights of cells 0..size-1 for ``coords`` [...] in cell units (cell i
    spans [i, i + 1), its centre at i + 0.5 in ``grid_sample``'s align_corners=False frame)."""
    centres = torch.arange(size, dtype=coords.dtype, device=coords.device) + 0.5
    return (1 - (coords[..., None] - centres).abs()).clamp(min=0)


def grid_sample(features: Tensor, grid: Tensor) -> Tensor:
    """``F.grid_sample(features, grid)`` bilinear, zero padding, align_corners=False:
    features [B, C, H, W], grid [B, Ho, Wo, 2] normalised (x, y) -> [B, C, Ho, Wo].

    Sampling always runs in float32 (or float64): under bf16 autocast the features arrive in bf16,
    a bf16 coordinate is off by up to a cell on a 256-wide map, and torch's bf16 CPU kernel reads
    channels-last features as garbage (1e34 from unit-normal features, torch 2.13)."""
    features, grid = _common_dtype(features, grid)
    if not _MATMUL:
        return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    b, c, h, w = features.shape
    ho, wo = grid.shape[1:3]
    wx = tent_weights((grid[..., 0] + 1) * (w / 2), w).reshape(b, ho * wo, 1, w)
    wy = tent_weights((grid[..., 1] + 1) * (h / 2), h).reshape(b, ho * wo, h)
    rows = wy @ features.permute(0, 2, 1, 3).reshape(b, h, c * w)  # [B, P, C*W]: each point's row mix
    out = (rows.reshape(b, ho * wo, c, w) * wx).sum(-1)  # [B, P, C]
    return out.transpose(1, 2).reshape(b, c, ho, wo)


def sample_product_grid(features: Tensor, gx: Tensor, gy: Tensor) -> Tensor:
    """Samples at every (x, y) of a product grid per box (RoIAlign's bins): features
    [B, C, H, W], gx [B, N, kx] and gy [B, N, ky] normalised -> [B, N, C, ky, kx]."""
    features, gx = _common_dtype(features, gx)
    gy = gy.to(gx.dtype)
    b, c, h, w = features.shape
    n, kx, ky = gx.shape[1], gx.shape[2], gy.shape[2]
    if not _MATMUL:
        grid = torch.stack([gx[:, :, None, :].expand(b, n, ky, kx), gy[:, :, :, None].expand(b, n, ky, kx)], -1)
        out = grid_sample(features, grid.reshape(b, n * ky, kx, 2))  # [B, C, N*ky, kx]
        return out.reshape(b, c, n, ky, kx).permute(0, 2, 1, 3, 4)
    wy = tent_weights((gy + 1) * (h / 2), h).reshape(b, n * ky, h)
    wx = tent_weights((gx + 1) * (w / 2), w).reshape(b * n, kx, w)
    rows = (wy @ features.permute(0, 2, 1, 3).reshape(b, h, c * w)).reshape(b * n, ky * c, w)
    out = rows @ wx.transpose(1, 2)  # [B*N, ky*C, kx]
    return out.reshape(b, n, ky, c, kx).permute(0, 1, 3, 2, 4)


def _common_dtype(features: Tensor, coords: Tensor) -> tuple[Tensor, Tensor]:
    dtype = torch.promote_types(torch.promote_types(features.dtype, coords.dtype), torch.float32)
    return features.to(dtype), coords.to(dtype)
