"""What every postprocess returns: boxes always, masks when the model predicts them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    boxes: np.ndarray  # float32 [K, 4] x0, y0, x1, y1 in original image pixels
    scores: np.ndarray  # float32 [K], sorted high to low
    labels: np.ndarray  # int64 [K], contiguous class index
    masks: np.ndarray | None = None  # bool [K, H, W] at the original image size, or None

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, keep) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep],
                          None if self.masks is None else self.masks[keep])

    @staticmethod
    def empty(hw: tuple[int, int], with_masks: bool) -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                          np.zeros((0, *hw), bool) if with_masks else None)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form


def input_to_original(boxes: np.ndarray, meta) -> np.ndarray:
    """xyxy boxes in network-input pixels -> original image pixels, clipped to the image."""
    (h, w), (rh, rw) = meta.original_hw, meta.resized_hw
    scale = np.array([w / rw, h / rh, w / rw, h / rh], np.float32)
    out = np.asarray(boxes, np.float32).reshape(-1, 4) * scale
    out[:, 0::2] = out[:, 0::2].clip(0, w)
    out[:, 1::2] = out[:, 1::2].clip(0, h)
    return out
