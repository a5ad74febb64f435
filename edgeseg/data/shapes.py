"""Deterministic synthetic "shapes" dataset: the embedded default for CPU quick-starts.

Each image comes from its own ``np.random.default_rng([seed, split_index, image_index])``, so the
output is byte-identical for a given seed and any image can be regenerated on its own.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edgeseg.data.coco_writer import CocoWriter
from edgeseg.errors import EdgesegError

CLASS_NAMES = ["circle", "triangle", "rectangle", "star"]
# The "thin" style: shapes whose detail lies at the boundary (thin spikes, holes, prongs, strokes),
# where a coarse 28x28 RoI mask or a stride-4 mask loses it; for boundary-quality evaluation.
THIN_CLASS_NAMES = ["spiky_star", "ring", "fork", "stroke"]
# The "textured" style: the solid style's shapes, each filled with a two-colour texture (stripes,
# checkers or blobs) on a textured background of the same kinds, so that no colour threshold
# separates objects from background (for annotation-free methods: Free Mask, FreeSOLO).
STYLES = {"solid": CLASS_NAMES, "thin": THIN_CLASS_NAMES, "textured": CLASS_NAMES}
DEFAULT_NUM_TRAIN = 2000
DEFAULT_NUM_VAL = 200
MIN_VISIBLE_FRACTION = 0.3
MIN_VISIBLE_AREA = 40
MIN_DIAMETER = 20
MAX_DIAMETER_FRACTION = 0.625
_CHUNK = 64  # images rendered ahead of the writer
_SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing
Instances = list[tuple[np.ndarray, int]]


def generate_shapes(out: str | os.PathLike, num_train: int = DEFAULT_NUM_TRAIN,
                    num_val: int = DEFAULT_NUM_VAL, size: int = 256, seed: int = 0, style: str = "solid") -> None:
    """Write ``out/train`` and ``out/val`` COCO datasets of ``size`` x ``size`` RGB images of the
    ``style``'s shapes (``STYLES``)."""
    if style not in STYLES:
        raise EdgesegError(f"shapes: unknown style '{style}'; valid: {', '.join(STYLES)}")
    if size < 256:
        raise EdgesegError(f"shapes: image size must be at least 256, got {size}")
    if num_train < 0 or num_val < 0:
        raise EdgesegError("shapes: image counts must not be negative")
    # Rendering is mostly numpy/OpenCV work that releases the GIL, so threads overlap it with
    # the (in-order) writing; chunking bounds how many finished images wait in memory.
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
            def render(i: int, split_index: int = split_index) -> tuple[np.ndarray, Instances]:
                return render_image(np.random.default_rng([seed, split_index, i]), size, style)

            with CocoWriter(Path(out) / split, STYLES[style]) as writer:
                for start in range(0, count, _CHUNK):
                    indices = range(start, min(start + _CHUNK, count))
                    for i, (image, instances) in zip(indices, pool.map(render, indices)):
                        writer.add(f"{i:06d}.png", image, instances)


def render_image(rng: np.random.Generator, size: int = 256, style: str = "solid") -> tuple[np.ndarray, Instances]:
    """One RGB image and its visible instance masks as ``(mask uint8, class index)`` pairs."""
    shape_mask = _thin_shape_mask if style == "thin" else _shape_mask
    paint = _paint_textured if style == "textured" else _paint
    image = _background(rng, size)
    if style == "textured":
        _paint_textured(rng, image, np.ones((size, size), bool), alpha=float(rng.uniform(0.4, 0.8)))
    full: list[np.ndarray] = []
    visible: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, 7))):
        for _attempt in range(20):
            label = int(rng.integers(len(STYLES[style])))
            mask = shape_mask(rng, label, size)
            area = int(np.count_nonzero(mask))
            if area < MIN_VISIBLE_AREA:
                continue
            # The new shape goes on top: every shape below must stay visible enough.
            remaining = [v & ~mask for v in visible]
            if all(np.count_nonzero(r) >= max(MIN_VISIBLE_FRACTION * np.count_nonzero(f), MIN_VISIBLE_AREA)
                   for r, f in zip(remaining, full)):
                visible = remaining + [mask]
                full.append(mask)
                labels.append(label)
                paint(rng, image, mask)
                break
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.0)))
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 6.0))
    rgb = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return rgb, [(v.astype(np.uint8), lab) for v, lab in zip(visible, labels)]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float32 HxWx3 texture: gradient + low-frequency noise, sometimes stripes or checkers."""
    # Gradient and noise are both low-frequency: build them on a k x k grid and upsample once.
    k = int(rng.integers(2, 9))
    grid = np.linspace(-0.5, 0.5, k)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None] + 0.5
    c0, c1 = rng.uniform(0, 255, (2, 3))
    small = c0 + (c1 - c0) * t[:, :, None] + rng.uniform(-1, 1, (k, k, 3)) * rng.uniform(10, 60)
    image = cv2.resize(small.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        a = rng.uniform(0, np.pi)
        px = np.arange(size, dtype=np.float32)
        u = np.cos(a) * px[None, :] + np.sin(a) * px[:, None]
        v = -np.sin(a) * px[None, :] + np.cos(a) * px[:, None]
        period = np.float32(rng.uniform(6, 48))
        if rng.random() < 0.5:
            pattern = (np.floor(u / period) % 2).astype(np.float32)
        else:
            pattern = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        alpha = pattern[:, :, None] * np.float32(rng.uniform(0.15, 0.5))
        image += (rng.uniform(0, 255, 3).astype(np.float32) - image) * alpha
    return image


def _shape_mask(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """Binary mask of one randomly sized, rotated shape of class ``label``."""
    # Diameters log-uniform in [20 px, 0.625 * size]: about 40% of instances are COCO-"small"
    # (< 32^2 px), the rest medium and large. Smaller shapes would be 1-3 cells of a stride-4 mask.
    radius = float(np.exp(rng.uniform(np.log(MIN_DIAMETER), np.log(size * MAX_DIAMETER_FRACTION)))) / 2
    name = CLASS_NAMES[label]
    if name == "circle":
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(angles), np.sin(angles)], 1) * radius
    elif name == "triangle":
        angles = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.25, 0.25, 3)
        pts = np.stack([np.cos(angles), np.sin(angles) * rng.uniform(0.6, 1.0)], 1) * radius
    elif name == "rectangle":
        half_h = radius * rng.uniform(0.35, 1.0) / np.sqrt(2)
        half_w = radius / np.sqrt(2)
        pts = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    else:
        angles = np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.38, 0.55))
        pts = np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
    rot = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(rot), np.sin(rot)
    pts = pts @ np.array([[c, s], [-s, c]])
    pts += rng.uniform(radius, size - radius, 2)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def _thin_shape_mask(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """Binary mask of one randomly sized, placed shape of the "thin" style's class ``label``."""
    radius = float(np.exp(rng.uniform(np.log(2 * MIN_DIAMETER), np.log(size * MAX_DIAMETER_FRACTION)))) / 2
    centre = rng.uniform(radius, size - radius, 2)
    rot = rng.uniform(0, 2 * np.pi)
    mask = np.zeros((size, size), np.uint8)
    name = THIN_CLASS_NAMES[label]
    if name == "spiky_star":  # 5-9 spikes, a few pixels wide at half length
        n = int(rng.integers(5, 10))
        angles = rot + np.arange(2 * n) * np.pi / n
        radii = np.where(np.arange(2 * n) % 2 == 0, radius, radius * rng.uniform(0.15, 0.3))
        pts = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        cv2.fillPoly(mask, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    elif name == "ring":  # an annulus with an off-centre hole, its wall 1/8 to 1/2 of the radius
        cv2.circle(mask, _fixed(centre), int(radius * (1 << _SHIFT)), 1, -1, cv2.LINE_8, _SHIFT)
        inner = radius * rng.uniform(0.5, 0.85)
        offset = (radius - inner) * rng.uniform(0, 0.6) * np.array([np.cos(rot), np.sin(rot)])
        cv2.circle(mask, _fixed(centre + offset), int(inner * (1 << _SHIFT)), 0, -1, cv2.LINE_8, _SHIFT)
    elif name == "fork":  # a handle and 2-4 prongs, strokes 3-8% of the diameter wide
        width = max(2, int(round(2 * radius * rng.uniform(0.03, 0.08))))
        axis = np.array([np.cos(rot), np.sin(rot)])
        across = np.array([-axis[1], axis[0]])
        base = centre - axis * radius * 0.1
        strokes = [[centre - axis * radius, base]]
        prongs = int(rng.integers(2, 5))
        spread = radius * rng.uniform(0.3, 0.6)
        for k in np.linspace(-1, 1, prongs):
            bend = base + axis * radius * 0.3 + across * spread * k
            strokes.append([base, bend, bend + axis * radius * 0.6])
        cv2.polylines(mask, [np.round(np.array(s)).astype(np.int32) for s in strokes], False, 1, width)
    else:  # stroke: a smooth curve through 4 random points, 3-10 px wide
        ctrl = centre + rng.uniform(-radius, radius, (4, 2))
        t = np.linspace(0, 1, 40)[:, None]
        curve = ((1 - t) ** 3 * ctrl[0] + 3 * (1 - t) ** 2 * t * ctrl[1] + 3 * (1 - t) * t ** 2 * ctrl[2]
                 + t ** 3 * ctrl[3])
        cv2.polylines(mask, [np.round(curve).astype(np.int32)], False, 1, int(rng.integers(3, 11)))
    return mask.astype(bool)


def _fixed(xy: np.ndarray) -> tuple[int, int]:
    return int(round(xy[0] * (1 << _SHIFT))), int(round(xy[1] * (1 << _SHIFT)))


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    """Fill ``mask`` with a random colour (contrasting with what is below) and a mild shading."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    region, sub = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    below = region[sub].mean(axis=0)
    colour = rng.uniform(0, 255, 3)
    for _ in range(10):
        if np.abs(colour - below).max() >= 60:
            break
        colour = rng.uniform(0, 255, 3)
    a = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ramp = (np.cos(a) * (xx - xx.mean()) + np.sin(a) * (yy - yy.mean())) / max(x1 - x0, y1 - y0, 1)
    shaded = colour.astype(np.float32) * (1 + np.float32(rng.uniform(0, 0.5)) * ramp[:, :, None])
    region[sub] = shaded[sub]


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A [h, w] float32 pattern in [0, 1]: stripes or checkers at a random angle and period, or
    smooth blobs."""
    kind = int(rng.integers(3))
    if kind == 2:
        k = int(rng.integers(3, 9))
        noise = cv2.resize(rng.random((k, k)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        return (noise > np.median(noise)).astype(np.float32)
    a = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = np.cos(a) * xx + np.sin(a) * yy
    v = -np.sin(a) * xx + np.cos(a) * yy
    period = np.float32(rng.uniform(3, 12))
    if kind == 0:
        return (np.floor(u / period) % 2).astype(np.float32)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


def _paint_textured(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, alpha: float = 1.0) -> None:
    """Fill ``mask`` with a texture of two colours, blended over what is below by ``alpha``: one
    random, the other (for an object, ``alpha`` 1) the mean colour below it, so that half of the
    object has the colour of its surroundings and only the texture tells it apart."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    region, sub = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    if alpha == 1.0:
        c1 = np.clip(region[sub].mean(axis=0) + rng.uniform(-15, 15, 3), 0, 255).astype(np.float32)
    fill = c0 + (c1 - c0) * _texture(rng, y1 - y0, x1 - x0)[:, :, None]
    region[sub] = region[sub] * np.float32(1 - alpha) + fill[sub] * np.float32(alpha)
