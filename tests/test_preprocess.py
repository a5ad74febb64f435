"""Test-time and training resizing against detectron2's ResizeShortestEdge (PIL bilinear)."""

import cv2
import numpy as np
import pytest

from edgeseg.data.transforms import resize
from edgeseg.preprocess import normalize, preprocess, resize_image, shortest_edge_size
from tests.helpers import require


def detectron2_output_shape(oldh, oldw, short_edge_length, max_size):
    """detectron2/data/transforms/augmentation_impl.py ResizeShortestEdge.get_output_shape."""
    h, w = oldh, oldw
    size = short_edge_length * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh = newh * scale
        neww = neww * scale
    neww = int(neww + 0.5)
    newh = int(newh + 0.5)
    return (newh, neww)


def test_half_pixel_rounds_like_detectron2():
    assert shortest_edge_size(414, 207, 640, 853) == (853, 427)  # 426.5 -> 427 (was 426)
    assert shortest_edge_size(207, 414, 640, 853) == (427, 853)


def test_shortest_edge_size_matches_detectron2_everywhere():
    for short, max_size in ((640, 853), (416, 853), (256, 384), (608, 1333)):
        for h in range(1, 1200, 7):
            for w in (1, 3, 207, 333, 414, 480, 500, 640, 1001, 1920):
                d2 = detectron2_output_shape(h, w, short, max_size)
                # edgeseg keeps at least one pixel where detectron2 would produce an empty image
                expected = (max(1, d2[0]), max(1, d2[1]))
                assert shortest_edge_size(h, w, short, max_size) == expected, (h, w, short, max_size)


def _photo_like(h=240, w=320, seed=0):
    """Smooth shapes plus fine texture: enough high frequencies for aliasing to show."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(xs / 9.0) * np.cos(ys / 13.0),
                     128 + 90 * np.sin((xs + ys) / 5.0),
                     128 + 60 * np.cos(xs / 2.3)], -1)
    noise = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)).astype(np.float32), (0, 0), 0.8)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [0.3, 0.64, 0.8, 1.28, 1.6])
def test_resize_follows_pil_bilinear(scale):
    pil = require("PIL.Image")
    image = _photo_like()
    hw = (int(image.shape[0] * scale + 0.5), int(image.shape[1] * scale + 0.5))
    ref = np.asarray(pil.fromarray(image).resize(hw[::-1], pil.BILINEAR)).astype(int)
    ours = np.abs(resize_image(image, hw).astype(int) - ref).mean()
    linear = np.abs(cv2.resize(image, hw[::-1], interpolation=cv2.INTER_LINEAR).astype(int) - ref).mean()
    if scale < 1:  # PIL antialiases when shrinking; INTER_AREA is the closer OpenCV filter
        assert ours < 0.8 * linear
    else:  # enlarging: INTER_LINEAR, as close to PIL as OpenCV gets
        assert ours == linear and ours < 1.0


def test_train_and_test_resize_the_same_way():
    image = _photo_like()
    for hw in ((120, 160), (300, 400)):
        masks = np.zeros((1, *image.shape[:2]), dtype=np.uint8)
        trained, _ = resize(image, masks, hw)
        np.testing.assert_array_equal(trained, resize_image(image, hw))
    x, meta = preprocess(image, min_size=120, max_size=1000)
    assert meta.resized_hw == (120, 160)
    np.testing.assert_allclose(x[0, :, :120, :160].transpose(1, 2, 0),
                               normalize(resize_image(image, (120, 160))))
    assert resize_image(image, image.shape[:2]) is image
