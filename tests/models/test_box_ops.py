"""Box operations and RoIAlign in plain torch."""

import torch

from edgeseg.models.box_ops import cxcywh_to_xyxy, paired_giou, pairwise_giou, pairwise_iof, xyxy_to_cxcywh
from edgeseg.models.roi_align import roi_align


def test_conversions_round_trip():
    boxes = torch.tensor([[10.0, 20, 50, 80], [0, 0, 1, 1]])
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)


def test_giou_and_iof_values():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [4, 4, 5, 5]])
    # overlap 1, union 7, hull 9 -> 1/7 - 2/9; identical -> 1; disjoint: 0 - (25 - 5) / 25
    torch.testing.assert_close(pairwise_giou(a, b)[0], torch.tensor([1 / 7 - 2 / 9, 1.0, -0.8]))
    torch.testing.assert_close(paired_giou(a.expand(3, 4), b), pairwise_giou(a, b)[0])
    # IoF: the intersection over the first box's area, so it is not symmetric
    big, small = torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[0.0, 0, 2, 2]])
    assert pairwise_iof(small, big).item() == 1.0 and pairwise_iof(big, small).item() == 0.25


def test_roi_align_reads_a_linear_map_at_bin_centres():
    # features equal to their own input-pixel x coordinate: bilinear sampling is exact, so each
    # bin's average is the value at the bin centre
    stride = 4
    xs = (torch.arange(16.0) + 0.5) * stride  # cell j covers input pixels [4j, 4j + 4)
    features = xs.view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    boxes = torch.tensor([[[8.0, 8, 40, 24]]])
    out = roi_align(features, boxes, size=4, stride=stride)
    want = 8 + (torch.arange(4.0) + 0.5) * 8
    torch.testing.assert_close(out[0, 0], want.expand(4, 4))
