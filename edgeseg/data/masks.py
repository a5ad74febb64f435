"""Instance masks and their COCO forms: polygon/RLE decoding, RLE encoding, boxes, polygons."""

from __future__ import annotations

import warnings
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_utils

# pycocotools 2.0.x decode() triggers a NumPy 2 copy-keyword DeprecationWarning on every call;
# it is harmless, so silence exactly that one instead of flooding training logs.
warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                        category=DeprecationWarning, module=r"pycocotools\.")


def decode_segmentation(seg: list | dict, h: int, w: int) -> np.ndarray:
    """Decode a polygon list or (un)compressed RLE into an HxW uint8 0/1 mask."""
    if isinstance(seg, list):
        if not seg:
            return np.zeros((h, w), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = {"size": [h, w], "counts": seg["counts"]}
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a 2-D mask, with ``counts`` as str (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_area(rle: dict[str, Any]) -> int:
    """Pixel count of a compressed RLE (``counts`` as str or bytes)."""
    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"]}))


def mask_to_bbox(mask: np.ndarray) -> list[float]:
    """Tight COCO box ``[x, y, w, h]`` around the non-zero pixels (zeros for an empty mask)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


def _outset_polygon(contour: np.ndarray) -> np.ndarray:
    """Polygon through boundary-pixel centres, pushed out by half a pixel (mitred at corners).

    Without the outset, rasterising the polygon loses about half of every boundary pixel.
    """
    pts = contour.reshape(-1, 2).astype(np.float64) + 0.5  # COCO puts pixel centres at i + 0.5
    edges = np.roll(pts, -1, axis=0) - pts
    edges /= np.maximum(np.linalg.norm(edges, axis=1, keepdims=True), 1e-9)
    twice_area = float(np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1]))
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1) * (1.0 if twice_area > 0 else -1.0)
    n_in, n_out = np.roll(normals, 1, axis=0), normals
    cos = np.sum(n_in * n_out, axis=1, keepdims=True)
    return pts + 0.5 * (n_in + n_out) / np.maximum(1.0 + cos, 0.25)


def mask_to_segmentation(mask: np.ndarray, min_iou: float = 0.98) -> list[list[float]] | dict[str, Any]:
    """Polygons for a mask, or compressed RLE when polygons cannot represent it well.

    RLE is used for masks with holes (COCO polygons are unioned, so holes would be filled), for
    slivers without a 3-point contour and whenever the rasterised polygons miss ``min_iou``.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    has_holes = hierarchy is not None and bool((hierarchy[0, :, 3] >= 0).any())
    polygons = [np.round(_outset_polygon(c), 2).reshape(-1).tolist() for c in contours if len(c) >= 3]
    if has_holes or not polygons:
        return mask_to_rle(m)
    drawn = decode_segmentation(polygons, *m.shape)
    fg = m > 0
    union = np.count_nonzero(fg | (drawn > 0))
    if np.count_nonzero(fg & (drawn > 0)) < min_iou * union:
        return mask_to_rle(m)
    return polygons
