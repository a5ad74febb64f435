"""``roi_masks``: class probabilities [N, C], xyxy boxes [N, 4] in network-input pixels and one
fixed-size mask logit map per query [N, S, S] covering its box (AdaMixer's mask head, Mask
Transfiner at S = 112).

Detections are picked like ``boxes``; each kept mask is pasted into the original image only
inside its box (bilinear, sampling at pixel centres as detectron2's ``paste_masks_in_image``
does, zeros outside the mask), so the cost grows with the box area, not with the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.postprocess.boxes import top_pairs
from edgeseg.postprocess.detections import Detections, input_to_original, sigmoid

OUTPUTS = ("scores", "boxes", "masks")


def paste(prob: np.ndarray, box: np.ndarray, hw: tuple[int, int], threshold: float) -> np.ndarray:
    """A bool [H, W] mask with ``prob`` [S, S] resampled into ``box`` (xyxy, image pixels)."""
    h, w = hw
    out = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
    left, top = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    right, bottom = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
    if right <= left or bottom <= top:
        return out
    s_h, s_w = prob.shape
    # mask cell u (centre u + 0.5 of S) lands on image pixel x0 + (u + 0.5) * bw / S - 0.5
    sx, sy = bw / s_w, bh / s_h
    warp = np.array([[sx, 0, x0 + 0.5 * sx - 0.5 - left], [0, sy, y0 + 0.5 * sy - 0.5 - top]], np.float32)
    region = cv2.warpAffine(np.ascontiguousarray(prob, np.float32), warp, (right - left, bottom - top),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[top:bottom, left:right] = region > threshold
    return out


def postprocess(outputs: dict, meta, cls_threshold: float = 0.05, mask_threshold: float = 0.5,
                max_detections: int = 100, score_threshold: float = 0.0) -> Detections:
    # Only detections over the deploy threshold are pasted, and each only inside its box.
    queries, labels, scores = top_pairs(outputs["scores"], max(cls_threshold, score_threshold), max_detections)
    if queries.size == 0:
        return Detections.empty(meta.original_hw, with_masks=True)
    boxes = input_to_original(np.asarray(outputs["boxes"])[queries], meta)
    probs = sigmoid(np.asarray(outputs["masks"], np.float32)[queries])
    masks = np.stack([paste(p, b, meta.original_hw, mask_threshold) for p, b in zip(probs, boxes)])
    return Detections(boxes, scores.astype(np.float32), labels.astype(np.int64), masks)
