"""Matrix NMS against decays computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from edgeseg.models.matrix_nms import matrix_nms


def _box(x0, x1):  # a 1-row mask covering columns [x0, x1) of 10
    m = torch.zeros(10)
    m[x0:x1] = 1
    return m


def test_duplicates_decay_and_other_classes_do_not():
    masks = torch.stack([_box(0, 4), _box(0, 4), _box(0, 4), _box(6, 10)])
    labels = torch.tensor([0, 0, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    out = matrix_nms(masks, labels, scores)
    # mask 1 duplicates mask 0 (IoU 1): 0.8 * exp(-2); mask 2 is another class; mask 3 overlaps nothing
    assert out.tolist() == pytest.approx([0.9, 0.8 * math.exp(-2), 0.7, 0.6])


def test_compensation_by_the_suppressor_own_overlap():
    # 0: [0,4); 1: [0,4) (IoU 1 with 0); 2: [2,6): IoU 1/3 with 0 and with 1
    masks = torch.stack([_box(0, 4), _box(0, 4), _box(2, 6)])
    labels = torch.zeros(3, dtype=torch.long)
    scores = torch.tensor([0.9, 0.8, 0.7])
    out = matrix_nms(masks, labels, scores)
    by_0 = math.exp(-2 * (1 / 9 - 0))  # mask 0 is suppressed by nothing
    by_1 = math.exp(-2 * (1 / 9 - 1))  # mask 1 was itself suppressed (IoU 1): > 1, no decay
    assert out[2].item() == pytest.approx(0.7 * min(by_0, by_1))
    linear = matrix_nms(masks, labels, scores, kernel="linear")
    assert linear[2].item() == pytest.approx(0.7 * (1 - 1 / 3))
    with pytest.raises(ValueError, match="unknown kernel 'box'"):
        matrix_nms(masks, labels, scores, kernel="box")


def test_a_batch_decays_each_image_on_its_own():
    masks = torch.stack([_box(0, 4), _box(0, 4), _box(6, 10)])
    labels = torch.tensor([0, 0, 0])
    scores = torch.tensor([0.9, 0.8, 0.6])
    other = torch.stack([_box(0, 4), _box(6, 10), _box(6, 10)])
    batch = matrix_nms(torch.stack([masks, other]), torch.stack([labels, labels]), torch.stack([scores, scores]))
    torch.testing.assert_close(batch[0], matrix_nms(masks, labels, scores))
    torch.testing.assert_close(batch[1], matrix_nms(other, labels, scores))
