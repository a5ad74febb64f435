"""Instance drawing and image saving."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.vis import draw_instances, save_image


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (pixel edges) around bool masks [K, H, W]; zeros for an empty mask."""
    boxes = np.zeros((len(masks), 4), np.float32)
    rows, cols = masks.any(2), masks.any(1)
    for i, (r, c) in enumerate(zip(rows, cols)):
        ys, xs = np.flatnonzero(r), np.flatnonzero(c)
        if ys.size:
            boxes[i] = xs[0], ys[0], xs[-1] + 1, ys[-1] + 1
    return boxes


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    masks = np.zeros((2, 96, 128), dtype=bool)
    masks[0, 40:70, 20:60] = True
    masks[1, 0:30, 80:120] = True  # touches the top edge: its label goes inside the mask box
    return image, masks


def test_changes_only_masks_and_labels() -> None:
    image, masks = _scene()
    out = draw_instances(image, mask_boxes(masks), [0, 1], [0.87, 0.5], ["cat", "dog"], masks)
    assert out.dtype == np.uint8 and out.shape == image.shape
    changed = np.any(out != image, axis=2)
    assert changed[masks[0]].mean() > 0.9
    assert changed[masks[1]].mean() > 0.9
    outside = changed & ~masks.any(axis=0)
    assert outside.any()  # the first label sits above its mask
    ys, xs = np.nonzero(outside)
    # Everything changed outside the masks is a label box (< 20 px high, < 60 px wide): right above
    # mask 0, or at the top of mask 1, shifted left so that it stays inside the image.
    label0 = (ys >= 40 - 20) & (ys < 40) & (xs >= 20) & (xs < 20 + 60)
    label1 = (ys < 20) & (xs >= 128 - 60)
    assert np.all(label0 | label1)


def test_deterministic() -> None:
    image, masks = _scene()
    a = draw_instances(image, mask_boxes(masks), [1, 0], [0.3, 0.99], ["cat", "dog"], masks)
    b = draw_instances(image.copy(), mask_boxes(masks), [1, 0], [0.3, 0.99], ["cat", "dog"], masks.copy())
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a[masks[0]][0], a[masks[1]][0])  # distinct colours per instance


def test_no_instances() -> None:
    image, _ = _scene()
    out = draw_instances(image, np.zeros((0, 4)), [], [], ["cat"], np.zeros((0, 96, 128), bool))
    assert np.array_equal(out, image) and out is not image


def test_save_image_round_trip(tmp_path: Path) -> None:
    image, masks = _scene()
    out = draw_instances(image, mask_boxes(masks), [0, 1], [0.87, 0.5], ["cat", "dog"], masks)
    path = tmp_path / "vis" / "out.png"
    save_image(path, out)
    back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, out)
    with pytest.raises(EdgesegError, match="suffix"):
        save_image(tmp_path / "out.xyz", out)


def test_boxes_without_masks_are_drawn_as_rectangles() -> None:
    image, _ = _scene()
    boxes = np.array([[20, 40, 60, 70]], np.float32)
    out = draw_instances(image, boxes, [0], [0.9], ["cat"])
    changed = np.any(out != image, axis=2)
    assert changed[40:70, 20].all() and changed[40, 20:60].all()  # the box's left and top edges
    assert not changed[50:60, 30:50].any()  # its inside is left alone
