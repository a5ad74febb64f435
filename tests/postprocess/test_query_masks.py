"""Postprocessing on constructed network outputs whose correct detections are known.

Masks are written at stride 4 of the network input in cells of 4x4 input pixels; the detection
must come back at the original image size, the padding cropped away and the resize undone.
"""

import numpy as np
import pytest

from edgeseg.postprocess import postprocess, sigmoid
from edgeseg.preprocess import PIXEL_MEAN, PIXEL_STD, ImageMeta, preprocess

BIG = 20.0  # mask logit: sigmoid(+-20) is 1 or 0 to float32 precision


def run(scores, mask_logits, meta, **thresholds):
    """SparseInst's postprocessing ("query_masks") of one image's scores [N, C] and mask logits."""
    return postprocess("query_masks", {"scores": scores, "masks": mask_logits}, meta, thresholds)


def logit(p):
    return float(np.log(p / (1 - p)))


def box(hw, y0, y1, x0, x1):
    m = np.zeros(hw, bool)
    m[y0:y1, x0:x1] = True
    return m


def cell_logits(meta, cells):
    """[N, H/4, W/4] logits: +BIG on the given (row0, row1, col0, col1) cells, -BIG elsewhere."""
    ih, iw = meta.input_hw
    out = np.full((len(cells), ih // 4, iw // 4), -BIG, np.float32)
    for k, (r0, r1, c0, c1) in enumerate(cells):
        out[k, r0:r1, c0:c1] = BIG
    return out


def expected_box(meta, r0, r1, c0, c1):
    """Cells [r0, r1) x [c0, c1) cover input pixels [4 r0, 4 r1) x [4 c0, 4 c1) (bilinear x4 with
    half-pixel centres crosses 0.45 exactly there); in the original image that is the same box
    scaled by original / resized size (the padding adds nothing)."""
    (h, w), (rh, rw) = meta.original_hw, meta.resized_hw
    ys = np.round(np.array([4 * r0, 4 * r1]) * h / rh).astype(int)
    xs = np.round(np.array([4 * c0, 4 * c1]) * w / rw).astype(int)
    return box((h, w), ys[0], ys[1], xs[0], xs[1])


def assert_same_box(mask, expected, tol=1, min_iou=0.95):
    """Same extent to ``tol`` pixels on every side, and nearly the same pixels."""
    assert mask.shape == expected.shape
    assert mask.any(), "empty mask"
    ys, xs = np.nonzero(mask)
    ey, ex = np.nonzero(expected)
    got = (ys.min(), ys.max(), xs.min(), xs.max())
    want = (ey.min(), ey.max(), ex.min(), ex.max())
    assert max(abs(a - b) for a, b in zip(got, want)) <= tol, (got, want)
    iou = (mask & expected).sum() / (mask | expected).sum()
    assert iou > min_iou, iou


def meta_for(original_hw, **kw):
    _, meta = preprocess(np.zeros((*original_hw, 3), np.uint8), **kw)
    return meta


# (original size, preprocessing): padding on the right, at the bottom, both, none, and a
# static input much larger than the resized image (letterboxed).
LAYOUTS = [
    ((90, 200), dict(min_size=96, max_size=1000)),       # resized 96x213, input 96x224
    ((300, 170), dict(min_size=100, max_size=1000)),     # resized 176x100, input 192x128
    ((123, 77), dict(min_size=77, max_size=1000)),       # no resize, input 128x96
    ((64, 96), dict(min_size=64, max_size=1000)),        # no resize, no padding
    ((90, 200), dict(input_hw=(128, 128))),              # fit 58x128, padded to 128x128
    ((200, 90), dict(input_hw=(96, 160))),               # fit 96x43, padded to 96x160
]


@pytest.mark.parametrize("original_hw, kw", LAYOUTS)
def test_masks_come_back_at_the_original_size_without_the_padding(original_hw, kw):
    meta = meta_for(original_hw, **kw)
    rh, rw = meta.resized_hw
    last_r, last_c = -(-rh // 4), -(-rw // 4)  # cells from these on hold padding only
    # one object over the image's bottom-right corner (and the first padding cells), one inside
    corner = (last_r - 5, last_r + 1, last_c - 6, last_c + 1)
    inner = (1, max(3, rh // 8), 2, max(4, rw // 8))
    logits = cell_logits(meta, [corner, inner])
    # Further on, the padding says "object" (out of reach of the image's pixels' interpolation):
    # none of it may come back.
    logits[:, last_r + 1:, :] = BIG
    logits[:, :, last_c + 1:] = BIG
    scores = np.array([[0.9, 0.1], [0.2, 0.7]], np.float32)
    dets = run(scores, logits, meta, cls_threshold=0.05, mask_threshold=0.45)
    assert dets.masks.shape == (2, *original_hw) and dets.masks.dtype == bool
    assert dets.labels.tolist() == [0, 1] and dets.labels.dtype == np.int64 and dets.scores.dtype == np.float32
    assert dets.masks[0, -1, -1] and not dets.masks[0, 0, 0]
    assert_same_box(dets.masks[0], expected_box(meta, *corner))
    assert_same_box(dets.masks[1], expected_box(meta, *inner))
    for b, m in zip(dets.boxes, dets.masks):  # boxes are the masks' tight boxes, xyxy in original pixels
        ys, xs = m.nonzero()
        assert b.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_a_resize_that_ignored_the_padding_would_miss():
    """The check above is tight enough: the box placed as if the padded input were the image is off."""
    meta = meta_for((90, 200), min_size=96, max_size=1000)  # resized 96x213 in a 96x224 input
    cells = (6, 20, 40, 53)
    right = expected_box(meta, *cells)
    wrong_meta = ImageMeta(meta.original_hw, meta.input_hw, meta.input_hw)  # "resized" = padded size
    wrong = expected_box(wrong_meta, *cells)
    with pytest.raises(AssertionError):
        assert_same_box(wrong, right)
    dets = run(np.array([[0.9]], np.float32), cell_logits(meta, [cells]), meta)
    assert_same_box(dets.masks[0], right)


def test_round_trip_through_preprocess_finds_the_drawn_object():
    """A fake network that segments the red pixels of its input at stride 4: the detection lands on
    the red rectangle of the original image, whatever the resize and padding did."""
    for hw, kw in LAYOUTS[:2] + LAYOUTS[4:]:
        image = np.full((*hw, 3), 40, np.uint8)
        h, w = hw
        y0, y1, x0, x1 = h // 3, h - 3, w // 2, w  # touches the bottom-right corner
        image[y0:y1, x0:x1] = (250, 10, 10)
        x, meta = preprocess(image, **kw)
        red = x[0, 0] - x[0, 1]  # normalised R - G: large on the rectangle, ~0 elsewhere and in the padding
        ih, iw = meta.input_hw
        cells = red.reshape(ih // 4, 4, iw // 4, 4).mean((1, 3))
        logits = np.where(cells > 2.0, BIG, -BIG)[None].astype(np.float32)
        dets = run(np.array([[0.2, 0.8]], np.float32), logits, meta)
        assert len(dets) == 1 and dets.labels[0] == 1
        truth = box(hw, y0, y1, x0, x1)
        # a cell is "red" when more than half of it is: edges move by up to half a cell
        tol = 1 + int(np.ceil(2 * max(h / meta.resized_hw[0], w / meta.resized_hw[1])))
        assert_same_box(dets.masks[0], truth, tol=tol, min_iou=0.9)


def test_preprocess_puts_the_image_top_left_and_pads_with_zeros():
    image = np.full((90, 200, 3), 200, np.uint8)
    x, meta = preprocess(image, input_hw=(128, 128))
    assert meta == ImageMeta((90, 200), (58, 128), (128, 128)) and x.shape == (1, 3, 128, 128)
    expected = (200 - PIXEL_MEAN) / PIXEL_STD
    np.testing.assert_allclose(x[0, :, :58, :].reshape(3, -1).T, np.broadcast_to(expected, (58 * 128, 3)), rtol=1e-6)
    assert not x[0, :, 58:, :].any()
    nhwc, _ = preprocess(image, input_hw=(128, 128), layout="NHWC")
    np.testing.assert_array_equal(nhwc[0], x[0].transpose(1, 2, 0))


def test_class_threshold_is_strict_and_labels_are_the_argmax():
    meta = meta_for((64, 64), min_size=64, max_size=64)
    scores = np.array([[0.30, 0.31, 0.0],   # kept, label 1
                       [0.25, 0.0, 0.0],    # exactly at the threshold: dropped
                       [0.0, 0.0, 0.26],    # just above: kept, label 2
                       [0.1, 0.2, 0.24]], np.float32)  # best below: dropped
    logits = cell_logits(meta, [(2, 8, 2, 8)] * 4)
    dets = run(scores, logits, meta, cls_threshold=np.float32(0.25))
    assert dets.labels.tolist() == [1, 2]
    np.testing.assert_allclose(dets.scores, [0.31, 0.26], rtol=1e-5)
    empty = run(scores, logits, meta, cls_threshold=0.5)
    assert empty.masks.shape == (0, 64, 64) and empty.scores.shape == (0,) and empty.labels.dtype == np.int64


def test_mask_threshold_and_maskness_rescoring():
    """final score = class score x mean probability over the mask's own pixels."""
    meta = meta_for((64, 64), min_size=64, max_size=64)  # no resize: 16x16 cells, 4 px each
    logits = np.full((3, 16, 16), -BIG, np.float32)
    logits[0, 2:10, 2:10] = logit(0.9)   # confident mask: maskness 0.9
    logits[1, 4:12, 4:12] = logit(0.6)   # hesitant mask: maskness 0.6
    logits[2] = logit(0.4)               # everywhere 0.4 < 0.45: empty mask, maskness 0
    scores = np.array([[0.5], [0.8], [0.95]], np.float32)
    dets = run(scores, logits, meta, cls_threshold=0.1, mask_threshold=0.45)
    # 0.8 * 0.6 = 0.48 outranks 0.5 * 0.9 = 0.45; the 0.95-scored query with no mask scores 0
    np.testing.assert_allclose(dets.scores, [0.48, 0.45, 0.0], atol=1e-5)
    assert_same_box(dets.masks[0], box((64, 64), 16, 48, 16, 48), tol=2, min_iou=0.8)
    assert_same_box(dets.masks[1], box((64, 64), 8, 40, 8, 40), tol=2, min_iou=0.8)
    assert not dets.masks[2].any()
    # a higher mask threshold drops the 0.6 mask's pixels: its score becomes 0
    dets = run(scores, logits, meta, cls_threshold=0.1, mask_threshold=0.7)
    np.testing.assert_allclose(dets.scores, [0.45, 0.0, 0.0], atol=1e-5)
    assert dets.masks[0].any() and not dets.masks[1:].any()
    # and a lower one makes the 0.4 everywhere mask the whole image, rescored by 0.4
    dets = run(scores, logits, meta, cls_threshold=0.1, mask_threshold=0.3)
    np.testing.assert_allclose(dets.scores, [0.48, 0.45, 0.95 * 0.4], atol=1e-5)
    assert dets.masks[2].all()


def test_detections_are_ordered_by_final_score_and_capped():
    meta = meta_for((64, 64), min_size=64, max_size=64)
    rng = np.random.default_rng(0)
    n = 12
    cells = [(i, i + 3, 0, 4 + i) for i in range(n)]  # each query's mask is different
    logits = cell_logits(meta, cells)
    scores = np.zeros((n, 3), np.float32)
    values = rng.permutation(np.linspace(0.2, 0.9, n)).astype(np.float32)
    scores[np.arange(n), np.arange(n) % 3] = values
    dets = run(scores, logits, meta, cls_threshold=0.1, max_detections=5)
    order = np.argsort(-values)[:5]
    np.testing.assert_allclose(dets.scores, values[order], rtol=1e-5)  # maskness 1 here
    assert dets.labels.tolist() == (order % 3).tolist()
    for mask, q in zip(dets.masks, order):  # each mask is its own query's, in the same order
        assert_same_box(mask, expected_box(meta, *cells[q]))
    # ties (same score, same mask area, hence same maskness) keep the query order
    same = [(i, i + 3, 0, 4) for i in range(4)]
    tied = run(np.full((4, 1), 0.5, np.float32), cell_logits(meta, same), meta, max_detections=3)
    for mask, q in zip(tied.masks, range(3)):
        assert_same_box(mask, expected_box(meta, *same[q]))


def test_more_masks_than_opencv_resizes_at_once():
    """OpenCV resizes a limited number of channels at once: masks past a chunk must stay themselves."""
    meta = meta_for((60, 100), min_size=48, max_size=1000)  # resized 48x80, input 64x96: 16x24 cells
    n = 600
    cells = [(q % 10, q % 10 + 2, (q // 10) % 17, (q // 10) % 17 + 3) for q in range(n)]
    scores = np.linspace(0.99, 0.4, n, dtype=np.float32)[:, None]
    dets = run(scores, cell_logits(meta, cells), meta, max_detections=n)
    assert len(dets) == n
    for q in (0, 127, 128, 129, 511, 512, 513, 599):
        assert_same_box(dets.masks[q], expected_box(meta, *cells[q]), tol=2)


def test_sigmoid_does_not_overflow():
    with np.errstate(all="raise"):
        out = sigmoid(np.array([-1e4, -50, 0, 50, 1e4], np.float32))
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1], atol=1e-7)
