"""Training augmentations on numpy arrays: random crop, horizontal flip, multi-scale resize.

Every random choice comes from the ``rng`` passed in, so a sample's augmentation is a pure
function of (seed, sample index): training resumes exactly without saving worker RNG state.

Instances are a dict of the fields present (``CocoDataset.load_instances``): ``labels`` and any
of ``masks`` [N,H,W], ``boxes`` [N,4] xyxy, ``points`` [N,P,2] xy with ``point_labels`` [N,P].
Boxes and points are continuous coordinates (pixel j spans [j, j+1)), so a flip maps x to W - x.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.preprocess import resize_image, shortest_edge_size


def crop_window(h: int, w: int, size_range, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` of an absolute crop drawn from ``size_range`` (detectron2's "absolute_range")."""
    ch = min(h, int(rng.integers(size_range[0], size_range[1] + 1)))
    cw = min(w, int(rng.integers(size_range[0], size_range[1] + 1)))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return y0, x0, ch, cw


def crop_instances(image, instances, window):
    """Crop to ``window``; boxes are clipped, points that leave get label -1 (ignored). Instances
    whose mask (or, without masks, clipped box) is emptied are dropped."""
    y0, x0, h, w = window
    out = dict(instances)
    if "masks" in out:
        out["masks"] = out["masks"][:, y0 : y0 + h, x0 : x0 + w]
    if "boxes" in out:
        shifted = out["boxes"] - np.asarray([x0, y0, x0, y0], np.float32)
        out["boxes"] = np.clip(shifted, 0, np.asarray([w, h, w, h], np.float32))
    if "points" in out:
        out["points"] = out["points"] - np.asarray([x0, y0], np.float32)
        x, y = out["points"][..., 0], out["points"][..., 1]
        inside = (x >= 0) & (x <= w) & (y >= 0) & (y <= h)
        out["point_labels"] = np.where(inside, out["point_labels"], -1)
    if "masks" in out:
        keep = out["masks"].any(axis=(1, 2))
    elif "boxes" in out:
        keep = (out["boxes"][:, 2] > out["boxes"][:, 0]) & (out["boxes"][:, 3] > out["boxes"][:, 1])
    else:
        keep = slice(None)
    return image[y0 : y0 + h, x0 : x0 + w], {k: v[keep] for k, v in out.items()}


def flip_instances(image, instances):
    w = image.shape[1]
    out = dict(instances)
    if "masks" in out:
        out["masks"] = out["masks"][:, :, ::-1]
    if "boxes" in out:
        x0, y0, x1, y1 = out["boxes"].T
        out["boxes"] = np.stack([w - x1, y0, w - x0, y1], axis=1).astype(np.float32)
    if "points" in out:
        out["points"] = out["points"].copy()
        out["points"][..., 0] = w - out["points"][..., 0]
    return image[:, ::-1], out


def resize_instances(image, instances, hw):
    h, w = hw
    if image.shape[:2] == (h, w):
        return image, instances
    sx, sy = w / image.shape[1], h / image.shape[0]
    out = dict(instances)
    if "masks" in out:
        out["masks"] = _resize_masks(out["masks"], hw)
    if "boxes" in out:
        out["boxes"] = (out["boxes"] * np.asarray([sx, sy, sx, sy])).astype(np.float32)
    if "points" in out:
        out["points"] = (out["points"] * np.asarray([sx, sy])).astype(np.float32)
    return resize_image(image, (h, w)), out  # the same interpolation as test time


def _resize_masks(masks, hw):
    h, w = hw
    if not len(masks):
        return np.zeros((0, h, w), dtype=masks.dtype)
    stacked = np.ascontiguousarray(masks.transpose(1, 2, 0))
    out = np.empty((len(masks), h, w), dtype=masks.dtype)
    for i in range(0, len(masks), 128):  # OpenCV 5 resizes at most 128 channels at once
        part = cv2.resize(stacked[:, :, i : i + 128], (w, h), interpolation=cv2.INTER_NEAREST)
        out[i : i + 128] = part.reshape(h, w, -1).transpose(2, 0, 1)
    return out


def augment_instances(image, instances, rng: np.random.Generator, *, min_sizes, max_size, flip=True,
                      crop_size=None):
    """Random crop (half the time, when ``crop_size`` is set), flip, shortest-edge resize.

    The random draws do not depend on the fields present: masks see the same stream either way.
    """
    if crop_size and rng.random() < 0.5:
        image, instances = crop_instances(image, instances, crop_window(*image.shape[:2], crop_size, rng))
    if flip and rng.random() < 0.5:
        image, instances = flip_instances(image, instances)
    short = int(min_sizes[int(rng.integers(len(min_sizes)))])
    hw = shortest_edge_size(*image.shape[:2], short, max_size)
    instances = {k: np.ascontiguousarray(v) for k, v in instances.items()}
    return resize_instances(np.ascontiguousarray(image), instances, hw)


def subsample_points(instances, count: int, rng: np.random.Generator):
    """Keep ``count`` of each instance's labelled points, drawn uniformly (with replacement only
    when it has fewer), as detectron2's PointSup samples ``INPUT.SAMPLE_POINTS`` per iteration.
    Instances without labelled points keep -1 labels."""
    if "points" not in instances or count <= 0:
        return instances
    n = len(instances["point_labels"])
    points = np.zeros((n, count, 2), np.float32)
    labels = np.full((n, count), -1, np.int64)
    for i in range(n):
        have = np.flatnonzero(instances["point_labels"][i] >= 0)
        if len(have):
            pick = rng.choice(have, count, replace=len(have) < count)
            points[i], labels[i] = instances["points"][i, pick], instances["point_labels"][i, pick]
    return {**instances, "points": points, "point_labels": labels}


def neighbour_negatives(instances):
    """Every instance's points followed by the other instances' positive points inside its box,
    labelled 0: instance masks do not overlap, so a point on one object is off every other, and the
    points that say so most are those on an occluder inside the occluded object's box (the box alone
    calls them inside). Points [N, P, 2] become [N, P + K, 2], K the most any instance gains,
    padded with label -1. Run after the geometric augmentation: boxes and points have moved."""
    if "points" not in instances or len(instances["point_labels"]) < 2:
        return instances
    points, labels, boxes = instances["points"], instances["point_labels"], instances["boxes"]
    n, p = labels.shape
    every, positive = points.reshape(n * p, 2), labels.reshape(n * p) == 1
    owner = np.repeat(np.arange(n), p)
    gained = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        inside = (every[:, 0] >= x0) & (every[:, 0] <= x1) & (every[:, 1] >= y0) & (every[:, 1] <= y1)
        gained.append(every[positive & inside & (owner != i)])
    k = max(len(g) for g in gained)
    out_points = np.zeros((n, p + k, 2), np.float32)
    out_labels = np.full((n, p + k), -1, np.int64)
    out_points[:, :p], out_labels[:, :p] = points, labels
    for i, g in enumerate(gained):
        out_points[i, p:p + len(g)], out_labels[i, p:p + len(g)] = g, 0
    return {**instances, "points": out_points, "point_labels": out_labels}


# The masks-only call forms.
def random_crop(image, masks, labels, size_range, rng: np.random.Generator):
    image, out = crop_instances(image, {"masks": masks, "labels": labels},
                                crop_window(*image.shape[:2], size_range, rng))
    return image, out["masks"], out["labels"]


def hflip(image, masks):
    image, out = flip_instances(image, {"masks": masks})
    return image, out["masks"]


def resize(image, masks, hw):
    image, out = resize_instances(image, {"masks": masks}, hw)
    return image, out["masks"]


def augment(image, masks, labels, rng: np.random.Generator, **kw):
    image, out = augment_instances(image, {"masks": masks, "labels": labels}, rng, **kw)
    return image, out["masks"], out["labels"]


def copy_paste(image, instances, donor_image, donor_instances, rng: np.random.Generator, min_kept: float = 0.3):
    """Paste a random non-empty subset of the donor's instances (the donor resized to ``image``'s
    size) on top of ``image``: the pasted objects occlude what lies below, whose masks and boxes
    shrink to what stays visible; an instance left with less than ``min_kept`` of its area is
    dropped. Masks datasets only (FreeSOLO's copy-paste of instances)."""
    n = len(donor_instances["labels"])
    if n == 0 or "masks" not in instances:
        return image, instances
    h, w = image.shape[:2]
    donor_image, donor_instances = resize_instances(donor_image, donor_instances, (h, w))
    chosen = np.flatnonzero(rng.random(n) < 0.5)
    if chosen.size == 0:
        chosen = np.array([int(rng.integers(n))])
    pasted = donor_instances["masks"][chosen].astype(bool)
    cover = pasted.any(0)
    out_image = image.copy()
    out_image[cover] = donor_image[cover]
    below = instances["masks"].astype(bool)
    visible = below & ~cover
    keep = visible.sum((1, 2)) >= min_kept * np.maximum(below.sum((1, 2)), 1)
    masks = np.concatenate([visible[keep], pasted]).astype(np.uint8)
    labels = np.concatenate([instances["labels"][keep], donor_instances["labels"][chosen]])
    return out_image, {"labels": labels, "masks": masks, "boxes": _mask_boxes(masks)}


def _mask_boxes(masks):
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if ys.size:
            boxes[i] = [xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]
    return boxes
