"""The deploy threshold: detections under it cost no work at the frame's size, in every output kind
and in the demo; masks of the detections kept match the published two-step resize."""

import cv2
import numpy as np
import pytest

from edgeseg.postprocess import boxes, postprocess, query_masks, roi_masks, sigmoid
from edgeseg.preprocess import ImageMeta

CAMERA = ImageMeta((720, 1280), (256, 455), (256, 480))  # a 1280x720 frame at 256 px, padded to /32


class WarpSpy:
    """Stands in for ``cv2`` inside a postprocess module and records each warp's output size."""

    def __init__(self):
        self.sizes: list[tuple[int, int]] = []

    def __getattr__(self, name):
        return getattr(cv2, name)

    def warpAffine(self, src, m, dsize, **kwargs):  # noqa: N802 (OpenCV's name)
        self.sizes.append(dsize)
        return cv2.warpAffine(src, m, dsize, **kwargs)


def blob_outputs(n: int, meta: ImageMeta, stride: int = 4, seed: int = 0) -> dict:
    """``n`` queries, each a soft disc of mask logits somewhere in the image's valid region."""
    rng = np.random.default_rng(seed)
    h, w = meta.input_hw[0] // stride, meta.input_hw[1] // stride
    vh, vw = meta.resized_hw[0] // stride, meta.resized_hw[1] // stride
    yy, xx = np.mgrid[:h, :w]
    masks = np.empty((n, h, w), np.float32)
    for i in range(n):
        cy, cx, r = rng.uniform(4, vh - 4), rng.uniform(4, vw - 4), rng.uniform(2, 5)
        masks[i] = 8.0 * (r - np.hypot(yy - cy, xx - cx)) / r
    scores = np.zeros((n, 4), np.float32)
    scores[np.arange(n), rng.integers(0, 4, n)] = np.linspace(0.9, 0.01, n)
    return {"scores": scores, "masks": masks}


def two_step(outputs: dict, meta: ImageMeta, mask_threshold: float = 0.45) -> np.ndarray:
    """SparseInst's published resize for every query: logits -> probabilities, to the padded
    input, crop the valid region, to the original size, threshold."""
    probs = sigmoid(outputs["masks"])
    rh, rw = meta.resized_hw
    out = []
    for p in probs:
        p = cv2.resize(p, meta.input_hw[::-1], interpolation=cv2.INTER_LINEAR)[:rh, :rw]
        if (rh, rw) != meta.original_hw:
            p = cv2.resize(np.ascontiguousarray(p), meta.original_hw[::-1], interpolation=cv2.INTER_LINEAR)
        out.append(p > mask_threshold)
    return np.stack(out)


def test_query_masks_skip_detections_under_the_deploy_threshold(monkeypatch):
    outputs = blob_outputs(30, CAMERA)
    everything = postprocess("query_masks", outputs, CAMERA, {}, score=0.0)
    spy = WarpSpy()
    monkeypatch.setattr(query_masks, "cv2", spy)
    shown = postprocess("query_masks", outputs, CAMERA, {}, score=0.3)
    assert 0 < len(shown) < len(everything)
    assert (shown.scores >= 0.3).all() and (everything.scores < 0.3).sum() == len(everything) - len(shown)
    assert len(spy.sizes) == len(shown)  # one warp per detection shown, none for the others
    frame = CAMERA.original_hw[0] * CAMERA.original_hw[1]
    assert max(w * h for w, h in spy.sizes) < frame / 20  # each inside its mask's window
    np.testing.assert_array_equal(shown.masks, everything.masks[: len(shown)])
    np.testing.assert_array_equal(shown.boxes, everything.boxes[: len(shown)])


@pytest.mark.parametrize("meta", [CAMERA, ImageMeta((256, 256), (256, 256), (256, 256)),
                                  ImageMeta((480, 300), (853, 533), (864, 544))])
def test_one_step_resize_matches_the_published_two_steps(meta):
    outputs = blob_outputs(12, meta)
    dets = postprocess("query_masks", outputs, meta, {"cls_threshold": 0.0, "max_detections": 100}, score=0.0)
    reference = two_step(outputs, meta)[np.argsort(-outputs["scores"].max(1), kind="stable")]
    assert dets.masks.shape == reference.shape
    iou = (dets.masks & reference).sum((1, 2)) / np.maximum((dets.masks | reference).sum((1, 2)), 1)
    if meta.original_hw == meta.resized_hw == meta.input_hw:
        np.testing.assert_array_equal(dets.masks, reference)  # one resize either way: identical
    assert iou.min() > 0.97, iou
    ys, xs = np.nonzero(dets.masks[0])
    np.testing.assert_array_equal(dets.boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_roi_masks_and_boxes_apply_the_deploy_threshold_first(monkeypatch):
    n = 20
    rng = np.random.default_rng(1)
    scores = np.zeros((n, 3), np.float32)
    scores[:, 0] = np.linspace(0.95, 0.05, n)
    xy = rng.uniform(0, 200, (n, 2)).astype(np.float32)
    outputs = {"scores": scores, "boxes": np.concatenate([xy, xy + 40], 1),
               "masks": rng.normal(size=(n, 28, 28)).astype(np.float32)}
    spy = WarpSpy()
    monkeypatch.setattr(roi_masks, "cv2", spy)
    shown = postprocess("roi_masks", outputs, CAMERA, {}, score=0.5)
    assert len(shown) == (scores[:, 0] > 0.5).sum() == len(spy.sizes)
    assert max(w * h for w, h in spy.sizes) <= (40 * 720 / 256 + 2) ** 2  # box-sized, not frame-sized
    assert len(postprocess("boxes", outputs, CAMERA, {}, score=0.5)) == len(shown)
    assert len(boxes.postprocess(outputs, CAMERA, cls_threshold=0.05)) == (scores[:, 0] > 0.05).sum()


def test_demo_postprocess_does_no_frame_work_under_the_threshold(tiny_bundle, monkeypatch):
    """The demo warps exactly the detections it draws (the tiny static 128 px model detects its own
    256 px scenes; camera-sized frames shrink them past what it learnt)."""
    from edgeseg.demo.run import run_demo
    from edgeseg.demo.sources import SyntheticSource
    from edgeseg.runtime import Predictor

    predictor = Predictor(tiny_bundle)
    source = SyntheticSource(frames=4, hw=(256, 256))
    frames = [source.frame(i) for i in range(4)]
    shown = sum(len(predictor(f)) for f in frames)
    everything = sum(len(predictor(f, score=0.0)) for f in frames)
    assert predictor.score == 0.3 and 0 < shown < everything  # it detects, and drops some
    spy = WarpSpy()
    monkeypatch.setattr(query_masks, "cv2", spy)
    summary = run_demo(tiny_bundle, "synthetic:4:256x256", show=False, log=lambda *_: None)
    assert summary["frames"] == 4 and summary["error"] is None
    assert len(spy.sizes) == shown  # every frame's detections under 0.3 were dropped before any warp
