"""Projection and colour-affinity mask losses (FreeSOLO's, and point-trained full-image masks')."""

from __future__ import annotations

import pytest
import torch

from edgeseg.models.mask_projection import box_cells, neighbours, pairwise_loss, projection_dice, rgb_to_lab


def test_lab_of_white_black_and_red():
    lab = rgb_to_lab(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).t().reshape(1, 3, 3, 1))[0, :, :, 0].t()
    assert lab[0].tolist() == pytest.approx([100, 0, 0], abs=0.05)
    assert lab[1].tolist() == pytest.approx([0, 0, 0], abs=0.05)
    assert lab[2].tolist() == pytest.approx([53.24, 80.09, 67.20], abs=0.1)  # sRGB red, as every converter gives


def test_neighbours_are_shifted_copies_with_zeros_off_the_map():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    n = neighbours(x, 2)[0, 0]  # [8, 4, 4]: order (-2,-2), (-2,0), (-2,2), (0,-2), (0,2), (2,-2), (2,0), (2,2)
    assert n[4, 0, 0] == x[0, 0, 0, 2] and n[6, 1, 3] == x[0, 0, 3, 3] and n[0, 1, 1] == 0


def test_pairwise_loss_is_low_for_agreeing_neighbours_and_high_for_a_checkerboard():
    edges = torch.ones(1, 8, 6, 6)
    flat = pairwise_loss(torch.full((1, 6, 6), 8.0), edges, 1)
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None]) % 2 * 16.0 - 8.0
    assert flat.item() < 1e-3 and pairwise_loss(checker[None], edges, 1).item() > 3.0
    assert pairwise_loss(checker[None], torch.zeros(1, 8, 6, 6), 1).item() == 0.0  # no similar edges: nothing


def test_projection_dice_sees_only_what_the_box_says():
    from edgeseg.models.solov2.loss import dice_loss

    target = torch.zeros(1, 9, 9)
    for r in range(9):  # a diamond touching every side of the 9x9 box
        k = 4 - abs(4 - r)
        target[0, r, 4 - k: 5 + k] = 1
    box = torch.ones(1, 9, 9)
    assert projection_dice(box, target).item() == pytest.approx(0.0, abs=1e-3)  # SOLO smoothing
    assert dice_loss(box, target).item() > 0.1
    half = box.clone()
    half[:, :, 5:] = 0
    assert projection_dice(half, target).item() > 0.1


def test_box_cells_mark_cells_whose_centre_is_inside():
    cells = box_cells(torch.tensor([[8.0, 4.0, 16.0, 12.0]]), 4, 6, 4)  # cell (i, j) centred at (4j + 2, 4i + 2)
    assert torch.nonzero(cells[0]).tolist() == [[1, 2], [1, 3], [2, 2], [2, 3]]
