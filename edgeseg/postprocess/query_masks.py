"""``query_masks``: per-query class scores [N, C] and mask logits [N, h, w] at a stride of the
input (SparseInst; SOLO after its in-graph Matrix NMS).

As published for SparseInst: one label per query (argmax), score threshold, maskness rescoring,
masks resized to the padded input, cropped to the image, resized to the original size and
thresholded; boxes are the masks' tight boxes.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.postprocess.detections import Detections, mask_boxes, sigmoid

OUTPUTS = ("scores", "masks")
CV_MAX_CHANNELS = 128


def _resize_stack(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of [K, h, w] float32 masks (OpenCV 5 resizes at most 128 channels at once)."""
    out = np.empty((len(masks), *hw), dtype=np.float32)
    for i in range(0, len(masks), CV_MAX_CHANNELS):
        chunk = np.ascontiguousarray(masks[i : i + CV_MAX_CHANNELS].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        out[i : i + CV_MAX_CHANNELS] = resized.reshape(*hw, -1).transpose(2, 0, 1)
    return out


def postprocess(outputs: dict, meta, cls_threshold: float = 0.005, mask_threshold: float = 0.45,
                max_detections: int = 100) -> Detections:
    scores = np.asarray(outputs["scores"], dtype=np.float32)
    labels = scores.argmax(-1)
    best = scores.max(-1)
    keep = np.flatnonzero(best > cls_threshold)
    if keep.size == 0:
        return Detections.empty(meta.original_hw, with_masks=True)
    probs = sigmoid(np.asarray(outputs["masks"], dtype=np.float32)[keep])
    binary = probs > mask_threshold
    maskness = (probs * binary).sum((1, 2)) / (binary.sum((1, 2)) + 1e-6)
    final = best[keep] * maskness
    order = np.argsort(-final, kind="stable")[:max_detections]
    probs = _resize_stack(probs[order], meta.input_hw)
    rh, rw = meta.resized_hw
    probs = probs[:, :rh, :rw]
    if (rh, rw) != tuple(meta.original_hw):  # at the same size cv2 returns an exact copy: skip the work
        probs = _resize_stack(probs, meta.original_hw)
    masks = probs > mask_threshold
    return Detections(mask_boxes(masks), final[order].astype(np.float32), labels[keep][order].astype(np.int64), masks)
