"""Image decoding: any file OpenCV reads, as HxWx3 uint8 RGB, with truncation caught first."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import fail


def read_image_rgb(path: Path) -> np.ndarray:
    """Read any image OpenCV decodes as HxWx3 uint8 RGB (16-bit, float, gray and alpha handled)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise fail(path, "image file not found") from None
    except OSError as e:
        raise fail(path, f"cannot read image ({e.strerror})") from None
    if is_truncated(data):
        raise fail(path, "cannot decode image (truncated file)")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise fail(path, "cannot decode image (corrupt or truncated)")
    return to_rgb8(image, bgr=True)


def is_truncated(data: np.ndarray) -> bool:
    """PNG without its IEND chunk or JPEG without its end marker. Checked before decoding because
    libpng/libjpeg print their own complaint to stderr and may return a partly grey image."""
    head, tail = data[:8].tobytes(), data[-16:].tobytes()
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" not in tail
    return False


def to_rgb8(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Convert a gray/2/3/4-channel image of any depth to HxWx3 uint8 (RGB; input BGR if ``bgr``)."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(image, initial=0.0)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * scale + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2 or image.shape[2] == 2:  # gray or gray+alpha: alpha is dropped
        gray = image if image.ndim == 2 else image[:, :, 0]
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    rgb = image[:, :, 2::-1] if bgr else image[:, :, :3]
    return np.ascontiguousarray(rgb)
