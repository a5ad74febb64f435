"""The one preprocessing shared by training, evaluation and every runtime (torch-free).

RGB uint8 image -> resize (shortest edge with a max size, or to fit a fixed input) -> pad
bottom/right to a multiple of 32 (or to the fixed input) -> normalise with SparseInst's
ImageNet mean/std -> float32 NCHW (or NHWC for runtimes that want it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

PIXEL_MEAN = np.array([123.675, 116.280, 103.530], dtype=np.float32)  # RGB, as in SparseInst
PIXEL_STD = np.array([58.395, 57.120, 57.375], dtype=np.float32)
SIZE_DIVISOR = 32


@dataclass(frozen=True)
class ImageMeta:
    """Where the image sits inside the network input, to undo it in postprocessing."""

    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_hw: tuple[int, int]


def shortest_edge_size(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's ``ResizeShortestEdge.get_output_shape``, with its float steps and rounding
    (e.g. 414x207 -> 853x427 at 640/853)."""
    size = float(short)
    scale = size / min(h, w)
    newh, neww = (size, scale * w) if h < w else (scale * h, size)
    if max(newh, neww) > max_size:
        scale = max_size / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return max(1, int(newh + 0.5)), max(1, int(neww + 0.5))


def resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize to ``hw`` as close to detectron2's PIL bilinear as OpenCV gets.

    PIL's bilinear widens its filter when shrinking (antialiasing); INTER_LINEAR does not, and
    INTER_AREA is the closer match there. Enlarging, INTER_LINEAR matches PIL to 1 grey level.
    """
    h, w = hw
    if image.shape[:2] == (h, w):
        return image
    shrink = h <= image.shape[0] and w <= image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def fit_size(h: int, w: int, input_hw: tuple[int, int]) -> tuple[int, int]:
    scale = min(input_hw[0] / h, input_hw[1] / w)
    return max(1, min(input_hw[0], int(h * scale + 0.5))), max(1, min(input_hw[1], int(w * scale + 0.5)))


def padded_size(h: int, w: int, divisor: int = SIZE_DIVISOR) -> tuple[int, int]:
    return -(-h // divisor) * divisor, -(-w // divisor) * divisor


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise EdgesegError(f"{name}: expected an RGB image of shape HxWx3, got shape {shape}")
    if image.dtype != np.uint8:
        raise EdgesegError(f"{name}: expected uint8 pixels, got {image.dtype}")
    return image


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 HxWx3 normalised."""
    return (image.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD


def preprocess(
    image: np.ndarray,
    min_size: int = 640,
    max_size: int = 853,
    input_hw: tuple[int, int] | None = None,
    layout: str = "NCHW",
    name: str = "image",
) -> tuple[np.ndarray, ImageMeta]:
    """Return the network input (batch of one, float32) and the meta to undo the resize.

    ``input_hw`` fixes the input size (static-shape models): the image is scaled to fit and
    padded. Otherwise the shortest edge goes to ``min_size`` (longest at most ``max_size``)
    and the result is padded to a multiple of 32.
    """
    check_image(image, name)
    h, w = image.shape[:2]
    rh, rw = fit_size(h, w, input_hw) if input_hw else shortest_edge_size(h, w, min_size, max_size)
    resized = resize_image(image, (rh, rw))
    ph, pw = input_hw if input_hw else padded_size(rh, rw)
    if layout == "NHWC":
        x = np.zeros((1, ph, pw, 3), dtype=np.float32)
        x[0, :rh, :rw] = normalize(resized)
    else:  # plane by plane into the padded input: a float HWC copy and its transpose took 10x longer
        x = np.zeros((1, 3, ph, pw), dtype=np.float32)
        for c, plane in enumerate(cv2.split(resized)):
            out = x[0, c, :rh, :rw]
            np.subtract(plane, PIXEL_MEAN[c], out=out, dtype=np.float32)
            out /= PIXEL_STD[c]  # the same float32 steps as ``normalize``: the same values
    return x, ImageMeta((h, w), (rh, rw), (ph, pw))
