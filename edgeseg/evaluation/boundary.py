"""Boundary IoU and boundary AP (Cheng, Girshick, Dollár, Berg, Kirillov, CVPR 2021).

A mask's boundary region is its pixels within ``d`` of its contour, ``d`` = 2% of the image
diagonal (rounded, at least 1 pixel); the image border counts as contour. Boundary IoU is the IoU
of two masks' boundary regions: unlike mask IoU it does not saturate on large objects, so it
shows whether a model gets the edges right. Boundary AP is COCO AP with each detection/ground-truth
IoU replaced by min(mask IoU, boundary IoU) for non-crowd ground truth, as the authors' API
(bowenc0221/boundary-iou-api) computes it.
"""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_util
from pycocotools.cocoeval import COCOeval

DILATION_RATIO = 0.02
_KERNEL = np.ones((3, 3), np.uint8)


def boundary_width(h: int, w: int, dilation_ratio: float = DILATION_RATIO) -> int:
    """``d`` in pixels for an ``h`` x ``w`` image."""
    return max(1, int(round(dilation_ratio * float(np.hypot(h, w)))))


def mask_boundary(mask: np.ndarray, dilation_ratio: float = DILATION_RATIO) -> np.ndarray:
    """The mask's pixels within ``d`` (3x3 erosions) of its contour or of the image border."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, _KERNEL, iterations=boundary_width(h, w, dilation_ratio))[1:-1, 1:-1]
    return mask - eroded


def boundary_iou(a: np.ndarray, b: np.ndarray, dilation_ratio: float = DILATION_RATIO) -> float:
    """Boundary IoU of two binary masks of one image (0 when both are empty)."""
    ba, bb = mask_boundary(a, dilation_ratio).astype(bool), mask_boundary(b, dilation_ratio).astype(bool)
    union = np.logical_or(ba, bb).sum()
    return float(np.logical_and(ba, bb).sum() / union) if union else 0.0


class BoundaryEval(COCOeval):
    """pycocotools' COCOeval for segmentation with min(mask IoU, boundary IoU) as the IoU."""

    def __init__(self, coco_gt, coco_dt, dilation_ratio: float = DILATION_RATIO):
        super().__init__(coco_gt, coco_dt, "segm")
        self.dilation_ratio = dilation_ratio
        self._boundaries: dict[tuple[str, int], dict] = {}

    def _boundary(self, which: str, ann: dict) -> dict:
        key = (which, ann["id"])
        if key not in self._boundaries:
            boundary = mask_boundary(mask_util.decode(ann["segmentation"]), self.dilation_ratio)
            self._boundaries[key] = mask_util.encode(np.asfortranarray(boundary))
        return self._boundaries[key]

    def computeIoU(self, imgId, catId):  # noqa: N802 (pycocotools' name)
        mask_ious = super().computeIoU(imgId, catId)
        if len(mask_ious) == 0:
            return mask_ious
        p = self.params
        if p.useCats:
            gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")  # as the parent orders them
        dt = [dt[i] for i in order][: p.maxDets[-1]]
        crowd = np.array([int(g["iscrowd"]) for g in gt])
        boundary = np.asarray(mask_util.iou([self._boundary("dt", d) for d in dt],
                                            [self._boundary("gt", g) for g in gt], crowd.tolist()))
        ious = np.array(mask_ious)
        ious[:, crowd == 0] = np.minimum(ious[:, crowd == 0], boundary[:, crowd == 0])
        return ious
