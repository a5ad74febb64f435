"""``query_masks``: per-query class scores [N, C] and mask logits [N, h, w] at a stride of the
input (SparseInst; SOLO after its in-graph Matrix NMS).

As published for SparseInst: one label per query (argmax), score threshold, maskness rescoring,
masks upsampled to the original image and thresholded; boxes are the masks' tight boxes.

Each kept mask is resampled straight from its low-resolution map to the original image in one
bilinear step at the points the published two steps (to the padded input, then from its valid
region to the original size) sample, and only inside the window where it can exceed the
threshold: a bilinear value is a mix of its four neighbouring cells, so it stays under the
threshold away from cells over it. Queries under ``score_threshold`` (the deploy threshold) are
dropped before any of this, so full-frame work grows with what is shown, not with the queries.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.postprocess.detections import Detections, sigmoid

OUTPUTS = ("scores", "masks")


def mask_to_image(meta, mask_hw: tuple[int, int]) -> tuple[float, float]:
    """Scale (y, x) of the map from original image pixels to mask cells: a pixel's centre
    ``X + 0.5`` lands on cell coordinate ``(X + 0.5) * scale - 0.5``."""
    (h, w), (rh, rw), (ih, iw) = meta.original_hw, meta.resized_hw, meta.input_hw
    return rh * mask_hw[0] / (h * ih), rw * mask_hw[1] / (w * iw)


def _window(cells: np.ndarray, scale: float, size: int) -> tuple[int, int]:
    """Image pixel range [lo, hi) whose samples can touch the cells ``cells[0]..cells[-1]``."""
    lo = int(np.floor((cells[0] - 1 + 0.5) / scale - 0.5))
    hi = int(np.ceil((cells[-1] + 1 + 0.5) / scale - 0.5)) + 1
    return max(lo, 0), min(hi, size)


def paste(prob: np.ndarray, over: np.ndarray, meta, threshold: float, out: np.ndarray) -> np.ndarray:
    """Write ``prob`` [h, w] thresholded at the original size into ``out`` [H, W] (all False on
    entry) inside the window of the cells ``over`` [h, w] (bool, ``prob > threshold``); returns
    the tight xyxy box of what was written."""
    h, w = out.shape
    sy, sx = mask_to_image(meta, prob.shape)
    rows, cols = np.flatnonzero(over.any(1)), np.flatnonzero(over.any(0))
    if rows.size == 0:
        return np.zeros(4, np.float32)
    y0, y1 = _window(rows, sy, h)
    x0, x1 = _window(cols, sx, w)
    if y1 <= y0 or x1 <= x0:
        return np.zeros(4, np.float32)
    # output pixel (X, Y) of the window samples cell ((x0 + X + 0.5) * sx - 0.5, ...)
    warp = np.array([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]], np.float32)
    region = cv2.warpAffine(prob, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE) > threshold
    out[y0:y1, x0:x1] = region
    ys, xs = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if ys.size == 0:
        return np.zeros(4, np.float32)
    return np.array([x0 + xs[0], y0 + ys[0], x0 + xs[-1] + 1, y0 + ys[-1] + 1], np.float32)


def postprocess(outputs: dict, meta, cls_threshold: float = 0.005, mask_threshold: float = 0.45,
                max_detections: int = 100, score_threshold: float = 0.0) -> Detections:
    scores = np.asarray(outputs["scores"], dtype=np.float32)
    labels = scores.argmax(-1)
    best = scores.max(-1)
    keep = np.flatnonzero((best > cls_threshold) & (best >= score_threshold))  # maskness <= 1: final <= best
    if keep.size == 0:
        return Detections.empty(meta.original_hw, with_masks=True)
    probs = sigmoid(np.asarray(outputs["masks"], dtype=np.float32)[keep])
    binary = probs > mask_threshold
    maskness = (probs * binary).sum((1, 2)) / (binary.sum((1, 2)) + 1e-6)
    final = best[keep] * maskness
    order = np.argsort(-final, kind="stable")[:max_detections]
    if score_threshold > 0:  # evaluation (0) keeps every query over cls_threshold, as published
        order = order[final[order] >= score_threshold]
    masks = np.zeros((len(order), *meta.original_hw), bool)  # zero pages: untouched rows cost nothing
    boxes = np.zeros((len(order), 4), np.float32)
    for i, q in enumerate(order):
        boxes[i] = paste(np.ascontiguousarray(probs[q]), binary[q], meta, mask_threshold, masks[i])
    return Detections(boxes, final[order].astype(np.float32), labels[keep][order].astype(np.int64), masks)
