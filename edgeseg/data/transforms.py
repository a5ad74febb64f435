"""Training augmentations on numpy arrays: random crop, horizontal flip, multi-scale resize.

Every random choice comes from the ``rng`` passed in, so a sample's augmentation is a pure
function of (seed, sample index): training resumes exactly without saving worker RNG state.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.preprocess import shortest_edge_size


def random_crop(image, masks, labels, size_range, rng: np.random.Generator):
    """Crop an absolute (h, w) drawn from ``size_range`` (detectron2's "absolute_range")."""
    h, w = image.shape[:2]
    ch = min(h, int(rng.integers(size_range[0], size_range[1] + 1)))
    cw = min(w, int(rng.integers(size_range[0], size_range[1] + 1)))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    image = image[y0 : y0 + ch, x0 : x0 + cw]
    masks = masks[:, y0 : y0 + ch, x0 : x0 + cw]
    keep = masks.reshape(len(masks), -1).any(1)
    return image, masks[keep], labels[keep]


def hflip(image, masks):
    return image[:, ::-1], masks[:, :, ::-1]


def resize(image, masks, hw):
    h, w = hw
    if image.shape[:2] == (h, w):
        return image, masks
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if len(masks):
        stacked = np.ascontiguousarray(masks.transpose(1, 2, 0))
        out = np.empty((len(masks), h, w), dtype=masks.dtype)
        for i in range(0, len(masks), 512):
            part = cv2.resize(stacked[:, :, i : i + 512], (w, h), interpolation=cv2.INTER_NEAREST)
            out[i : i + 512] = part.reshape(h, w, -1).transpose(2, 0, 1)
        masks = out
    else:
        masks = np.zeros((0, h, w), dtype=masks.dtype)
    return image, masks


def augment(image, masks, labels, rng: np.random.Generator, *, min_sizes, max_size, flip=True,
            crop_size=None):
    """Random crop (half the time, when ``crop_size`` is set), flip, shortest-edge resize."""
    if crop_size and rng.random() < 0.5:
        image, masks, labels = random_crop(image, masks, labels, crop_size, rng)
    if flip and rng.random() < 0.5:
        image, masks = hflip(image, masks)
    short = int(min_sizes[int(rng.integers(len(min_sizes)))])
    hw = shortest_edge_size(*image.shape[:2], short, max_size)
    image, masks = resize(np.ascontiguousarray(image), np.ascontiguousarray(masks), hw)
    return image, masks, labels
