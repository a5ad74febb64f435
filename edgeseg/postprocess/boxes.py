"""``boxes``: per-query class probabilities [N, C] and xyxy boxes [N, 4] in network-input pixels
(query-based detectors such as AdaMixer).

As in Sparse R-CNN / AdaMixer inference: the N x C (query, class) pairs are ranked by score and
the best ``max_detections`` above the threshold kept, so one query may yield several classes;
boxes are scaled back to the original image and clipped to it.
"""

from __future__ import annotations

import numpy as np

from edgeseg.postprocess.detections import Detections, input_to_original

OUTPUTS = ("scores", "boxes")


def top_pairs(scores: np.ndarray, cls_threshold: float, max_detections: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, class index, score) of the best (query, class) pairs above the threshold."""
    flat = np.asarray(scores, np.float32).reshape(-1)
    candidates = np.flatnonzero(flat > cls_threshold)
    order = candidates[np.argsort(-flat[candidates], kind="stable")[:max_detections]]
    return order // scores.shape[1], order % scores.shape[1], flat[order]


def postprocess(outputs: dict, meta, cls_threshold: float = 0.05, max_detections: int = 100,
                score_threshold: float = 0.0, **_) -> Detections:
    queries, labels, scores = top_pairs(outputs["scores"], max(cls_threshold, score_threshold), max_detections)
    if queries.size == 0:
        return Detections.empty(meta.original_hw, with_masks=False)
    boxes = input_to_original(np.asarray(outputs["boxes"])[queries], meta)
    return Detections(boxes, scores.astype(np.float32), labels.astype(np.int64))
