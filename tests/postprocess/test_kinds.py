"""Each output kind's postprocess on constructed network outputs whose detections are known."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.postprocess import OUTPUT_KINDS, postprocess, primary_metric
from edgeseg.preprocess import ImageMeta

# A 100x200 (HxW) image resized by 0.64 to 64x128 and padded to a 96x128 input.
META = ImageMeta(original_hw=(100, 200), resized_hw=(64, 128), input_hw=(96, 128))
LOGIT = 12.0  # sigmoid ~ 1


def test_kinds_declare_outputs_and_metrics():
    assert OUTPUT_KINDS["query_masks"].outputs == ("scores", "masks")
    assert OUTPUT_KINDS["boxes"].outputs == ("scores", "boxes")
    assert OUTPUT_KINDS["roi_masks"].outputs == ("scores", "boxes", "masks")
    assert [primary_metric(k) for k in ("query_masks", "boxes", "roi_masks")] == ["mask AP", "box AP", "mask AP"]
    with pytest.raises(EdgesegError, match="unknown output kind 'blobs'"):
        primary_metric("blobs")


def test_query_masks_crop_the_padding_and_resize_to_the_original():
    masks = np.full((3, 24, 32), -LOGIT, np.float32)  # stride 4 of the 96x128 input
    masks[0, 2:6, 4:12] = LOGIT  # input pixels y 8..24, x 16..48 -> original y 12.5..37.5, x 25..75
    masks[1, 10:16, 0:32] = LOGIT  # half inside the image (resized height 64 = 16 cells), rest padding
    masks[2, 18:24, :] = LOGIT  # entirely in the padding
    scores = np.array([[0.9, 0.1], [0.2, 0.6], [0.1, 0.7]], np.float32)
    thresholds = {"cls_threshold": 0.3, "mask_threshold": 0.45, "max_detections": 10}
    dets = postprocess("query_masks", {"scores": scores, "masks": masks}, META, thresholds)
    assert dets.masks.shape == (3, 100, 200) and dets.labels.tolist() == [0, 1, 1]
    # maskness is measured on the stride-4 masks (as published), before the padding is cropped
    np.testing.assert_allclose(dets.scores, [0.9, 0.7, 0.6], atol=1e-4)
    first = dets.masks[0]
    ys, xs = np.nonzero(first)
    assert abs(ys.min() - 12.5) <= 1.5 and abs(ys.max() - 37.5) <= 1.5 and abs(xs.min() - 25) <= 1.5 and abs(xs.max() - 75) <= 1.5
    np.testing.assert_allclose(dets.boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert not dets.masks[1].any() and not dets.boxes[1].any()  # mask only in the padding: nothing left
    ys1, _ = np.nonzero(dets.masks[2])
    assert abs(ys1.min() - 62.5) <= 1.5 and ys1.max() == 99  # cropped at the image edge, not the padding
    few = postprocess("query_masks", {"scores": scores, "masks": masks}, META, {**thresholds, "max_detections": 1})
    assert len(few) == 1 and few.labels.tolist() == [0]
    none = postprocess("query_masks", {"scores": scores, "masks": masks}, META, {**thresholds, "cls_threshold": 0.95})
    assert len(none) == 0 and none.masks.shape == (0, 100, 200) and none.boxes.shape == (0, 4)


def test_query_masks_maskness_ranks_confident_masks_first():
    masks = np.full((2, 24, 32), -LOGIT, np.float32)
    masks[0, 2:10, 2:10] = 0.3  # barely above 0.45 after sigmoid (0.574): maskness 0.57
    masks[1, 2:10, 12:20] = LOGIT
    scores = np.array([[0.8], [0.7]], np.float32)
    dets = postprocess("query_masks", {"scores": scores, "masks": masks}, META,
                       {"cls_threshold": 0.1, "mask_threshold": 0.45, "max_detections": 5})
    assert dets.labels.tolist() == [0, 0] and dets.scores[0] == pytest.approx(0.7, abs=1e-3)
    assert dets.scores[1] == pytest.approx(0.8 * 0.5744, abs=2e-3)


def test_boxes_rank_query_class_pairs_and_map_back_to_the_image():
    scores = np.array([[0.9, 0.8], [0.1, 0.05], [0.3, 0.7]], np.float32)
    boxes = np.array([[16, 8, 48, 24], [0, 0, 10, 10], [-10, 40, 200, 90]], np.float32)  # input pixels
    dets = postprocess("boxes", {"scores": scores, "boxes": boxes}, META,
                       {"cls_threshold": 0.2, "mask_threshold": 0.5, "max_detections": 4})
    assert dets.masks is None
    assert dets.scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.3])
    assert dets.labels.tolist() == [0, 1, 1, 0]  # one query may yield two classes
    np.testing.assert_allclose(dets.boxes[0], [25, 12.5, 75, 37.5])  # x / 0.64, y / 0.64
    np.testing.assert_allclose(dets.boxes[2], [0, 62.5, 200, 100])  # clipped to the 200x100 image


def test_roi_masks_paste_inside_their_box_only():
    scores = np.array([[0.9], [0.8], [0.01]], np.float32)
    boxes = np.array([[16, 8, 48, 24], [64, 32, 96, 64], [0, 0, 8, 8]], np.float32)
    masks = np.full((3, 28, 28), LOGIT, np.float32)  # box 0: a full mask
    masks[1, :, 14:] = -LOGIT  # box 1: only its left half
    dets = postprocess("roi_masks", {"scores": scores, "boxes": boxes, "masks": masks}, META,
                       {"cls_threshold": 0.05, "mask_threshold": 0.5, "max_detections": 10})
    assert len(dets) == 2 and dets.masks.shape == (2, 100, 200)
    ys, xs = np.nonzero(dets.masks[0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (13, 36, 25, 74)  # pixel centres strictly inside 25..75 x 12.5..37.5
    ys, xs = np.nonzero(dets.masks[1])  # box 100..150 x 50..100 in the image, left half 100..125
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (50, 99, 100, 124)
    assert not dets.masks[:, :, :25].any() and not dets.masks[:, :12].any()
