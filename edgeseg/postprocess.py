"""The one postprocessing shared by PyTorch evaluation and every runtime (torch-free).

Networks return per-query class scores (already ``sqrt(sigmoid(cls) * sigmoid(objectness))``)
and stride-4 mask logits. Here, as published for SparseInst: one label per query (argmax),
score threshold, maskness rescoring, masks resized to the padded input, cropped to the image
and resized to the original size, then thresholded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.preprocess import ImageMeta


@dataclass
class Detections:
    masks: np.ndarray  # bool [K, H, W] at the original image size
    scores: np.ndarray  # float32 [K]
    labels: np.ndarray  # int64 [K], contiguous class index

    def __len__(self) -> int:
        return len(self.scores)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form


def _resize_stack(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of [K, h, w] float32 masks (cv2 handles at most 512 channels)."""
    out = np.empty((len(masks), *hw), dtype=np.float32)
    for i in range(0, len(masks), 512):
        chunk = np.ascontiguousarray(masks[i : i + 512].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        out[i : i + 512] = resized.reshape(*hw, -1).transpose(2, 0, 1)
    return out


def postprocess(
    scores: np.ndarray,
    mask_logits: np.ndarray,
    meta: ImageMeta,
    cls_threshold: float = 0.005,
    mask_threshold: float = 0.45,
    max_detections: int = 100,
) -> Detections:
    """``scores`` [N, C] probabilities, ``mask_logits`` [N, h, w] at stride 4 of the input."""
    scores = np.asarray(scores, dtype=np.float32)
    labels = scores.argmax(-1)
    best = scores.max(-1)
    keep = np.flatnonzero(best > cls_threshold)
    h, w = meta.original_hw
    if keep.size == 0:
        return Detections(np.zeros((0, h, w), bool), np.zeros(0, np.float32), np.zeros(0, np.int64))
    probs = sigmoid(np.asarray(mask_logits, dtype=np.float32)[keep])
    binary = probs > mask_threshold
    maskness = (probs * binary).sum((1, 2)) / (binary.sum((1, 2)) + 1e-6)
    final = best[keep] * maskness
    order = np.argsort(-final, kind="stable")[:max_detections]
    probs = _resize_stack(probs[order], meta.input_hw)
    rh, rw = meta.resized_hw
    probs = probs[:, :rh, :rw]
    if (rh, rw) != (h, w):  # at the same size cv2 returns an exact copy: skip the work
        probs = _resize_stack(probs, (h, w))
    return Detections(probs > mask_threshold, final[order].astype(np.float32), labels[keep][order].astype(np.int64))
