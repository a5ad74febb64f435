"""Boundary IoU and boundary AP against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.data.masks import mask_to_rle
from edgeseg.evaluation.boundary import boundary_iou, boundary_width, mask_boundary
from edgeseg.evaluation.coco_eval import evaluate, masks_to_results

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools


def square(x0: int, y0: int, side: int = 20, size: int = 100) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = 1
    return mask


def test_boundary_is_a_ring_of_two_percent_of_the_diagonal():
    assert boundary_width(100, 100) == 3  # round(0.02 * 141.4)
    assert boundary_width(10, 10) == 1  # at least one pixel
    ring = mask_boundary(square(10, 10))
    assert ring.sum() == 20 * 20 - 14 * 14  # a 3-pixel ring inside the square
    assert ring[10:13, 10:30].all() and not ring[13:27, 13:27].any()
    at_border = mask_boundary(square(0, 40))
    assert at_border[40:60, 0:3].all()  # the image border counts as contour


def test_boundary_iou_of_a_one_pixel_shift():
    a, b = square(10, 10), square(11, 10)
    # rows 10-12 and 27-29: 19 of 21 columns shared; rows 13-26: 4 of 8 ring columns shared
    assert boundary_iou(a, b) == pytest.approx((6 * 19 + 14 * 4) / (6 * 21 + 14 * 8))
    assert boundary_iou(a, a) == 1.0 and boundary_iou(a, np.zeros_like(a)) == 0.0


def test_boundary_ap_uses_the_smaller_of_mask_and_boundary_iou():
    gt = {"images": [{"id": 1, "height": 100, "width": 100}], "categories": [{"id": 1, "name": "x"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 400,
                           "segmentation": mask_to_rle(square(10, 10)), "bbox": [10, 10, 20, 20]}]}
    results = masks_to_results(1, square(11, 10)[None], [0.9], [0], [1])
    # mask IoU 380/420 = 0.905 passes the thresholds 0.50-0.90 (9 of 10); min(0.905, boundary IoU
    # 0.714) passes 0.50-0.70 (5 of 10); one detection matched at precision 1 -> AP 0.9 and 0.5
    assert evaluate(gt, results, "segm")["metrics"]["AP"] == pytest.approx(0.9)
    assert evaluate(gt, results, "boundary")["metrics"]["AP"] == pytest.approx(0.5)
    assert evaluate(gt, masks_to_results(1, square(10, 10)[None], [0.9], [0], [1]), "boundary")["metrics"]["AP"] == pytest.approx(1.0)


def test_dataset_evaluation_adds_boundary_ap_on_request(tmp_path):
    from edgeseg.data.coco import CocoDataset
    from edgeseg.data.coco_writer import write_coco
    from edgeseg.evaluation.dataset_eval import evaluate_dataset
    from edgeseg.postprocess import Detections, output_kind

    image = np.zeros((100, 100, 3), np.uint8)
    write_coco(tmp_path / "ds", [("a.png", image)], [[(square(10, 10), 0)]], ["x"])
    dataset = CocoDataset(tmp_path / "ds")

    def predict(image, name=None, score=0.0):  # the square one pixel off: mask AP 0.9, boundary AP 0.5
        return Detections(np.array([[11, 10, 31, 30]], np.float32), np.array([0.9], np.float32),
                          np.array([0]), square(11, 10)[None].astype(bool))

    predict.kind = output_kind("roi_masks")
    plain = evaluate_dataset(predict, dataset)
    assert sorted(plain["by_type"]) == ["bbox", "segm"] and plain["metrics"]["AP"] == pytest.approx(0.9)
    report = evaluate_dataset(predict, dataset, boundary=True)
    assert report["by_type"]["boundary"]["metrics"]["AP"] == pytest.approx(0.5)
    predict.kind = output_kind("boxes")  # a kind without masks has no boundary AP
    assert "boundary" not in evaluate_dataset(predict, dataset, boundary=True)["by_type"]
