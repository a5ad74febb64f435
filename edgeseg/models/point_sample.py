"""Reading maps at arbitrary points (PointRend's ``point_sample``): PointSup reads mask logits at
annotated points, Mask Transfiner reads features at its quadtree nodes. ``grid_sample`` with
``align_corners=False`` exports to every runtime (ONNX opset >= 16); TFLite gets its MatMul form
(:mod:`edgeseg.models.bilinear`)."""

from __future__ import annotations

from torch import Tensor

from edgeseg.models.bilinear import grid_sample


def point_sample(maps: Tensor, coords: Tensor) -> Tensor:
    """Bilinear samples of ``maps`` [N, H, W] at ``coords`` [N, P, 2] -> [N, P].

    ``coords`` are (x, y) in the unit square of the map's extent: (0, 0) is the top-left corner of
    the first cell and (1, 1) the bottom-right corner of the last (``align_corners=False``), so a
    point at pixel x of an input W pixels wide reads the map at x / W whatever the map's stride.
    Outside the square the map reads as zeros.
    """
    return sample_features(maps.unsqueeze(1), coords)[..., 0]


def sample_features(features: Tensor, coords: Tensor) -> Tensor:
    """Bilinear samples of ``features`` [B, C, H, W] at ``coords`` [B, P, 2] (unit square, as
    :func:`point_sample`) -> [B, P, C]."""
    grid = (2.0 * coords - 1.0).unsqueeze(2)  # [B, P, 1, 2]
    out = grid_sample(features, grid)
    return out[..., 0].transpose(1, 2)
