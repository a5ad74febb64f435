"""Point supervision's shared pieces: sampling at annotated points, losses that ignore unlabelled
points, points in a RoI's frame, and SparseInst's point objective against its mask objective."""

from __future__ import annotations

import math

import pytest
import torch

from edgeseg.models.point_sample import point_sample, sample_features
from edgeseg.models.point_sup import labelled_sums, point_bce, points_in_boxes, trains_on_points


def test_point_sample_reads_a_strided_map_at_input_pixels():
    h, w, stride = 6, 8, 4
    maps = torch.arange(h * w, dtype=torch.float32).reshape(1, h, w)
    # the centre of stride-4 cell (i, j) lies at input pixels (4j + 2, 4i + 2): it reads that cell alone
    cells = torch.tensor([[0, 0], [7, 5], [3, 2]])
    coords = ((cells * stride + 2).float() / torch.tensor([w * stride, h * stride]))[None]
    torch.testing.assert_close(point_sample(maps, coords)[0], torch.tensor([0.0, 47.0, 19.0]), atol=1e-5, rtol=0)
    outside = torch.tensor([[[1.2, 0.5]]])
    assert point_sample(maps, outside).item() == 0.0  # outside the map reads zeros
    features = torch.stack([maps[0], -maps[0]])[None]  # [1, 2, H, W]
    torch.testing.assert_close(sample_features(features, coords), torch.tensor([[[0.0, 0.0], [47, -47], [19, -19]]]),
                               atol=1e-5, rtol=0)


def test_point_losses_ignore_unlabelled_points():
    logits = torch.tensor([[2.0, -1.0, 5.0], [0.5, 0.0, -3.0]], requires_grad=True)
    labels = torch.tensor([[1, 0, -1], [-1, 1, -1]])
    loss = point_bce(logits, labels)
    loss.backward()
    assert logits.grad[labels < 0].abs().sum() == 0 and logits.grad[labels >= 0].abs().min() > 0
    want = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0, 0.0]),
                                                                torch.tensor([1.0, 0.0, 1.0]))
    assert loss.item() == pytest.approx(want.item())
    none = torch.zeros(1, 2, requires_grad=True)
    assert point_bce(none, torch.full((1, 2), -1)).item() == 0.0
    probs = torch.tensor([[1.0, 0.5, 0.3], [0.0, 0.0, 0.9]])
    pt, pp, tt = labelled_sums(probs, torch.tensor([[1, 0, -1], [0, 1, -1]]))
    assert pt.tolist() == [1.0, 0.0] and pp.tolist() == [1.25, 0.0] and tt.tolist() == [1.0, 1.0]


def test_points_in_boxes_and_outside_points_ignored():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    points = torch.tensor([[[10.0, 20.0], [20.0, 40.0], [30.0, 60.0], [31.0, 40.0], [20.0, 19.0]]])
    coords, labels = points_in_boxes(points, torch.tensor([[1, 0, 1, 1, 0]]), boxes)
    assert coords[0, :3].tolist() == [[0, 0], [0.5, 0.5], [1, 1]]
    assert labels.tolist() == [[1, 0, 1, -1, -1]]


def test_batch_supervision_prefers_masks():
    assert trains_on_points([{"labels": 0, "points": 0, "point_labels": 0}])
    assert not trains_on_points([{"labels": 0, "masks": 0, "points": 0, "point_labels": 0}])
    assert not trains_on_points([{"labels": 0, "masks": 0}])


def test_sparseinst_points_at_every_cell_give_the_mask_bce():
    """With a point at the centre of every stride-4 cell, labelled by a cell-aligned mask, and a box
    over the whole image, the point BCE is the full-mask BCE: the two objectives read the same logits."""
    from edgeseg.models.sparseinst.config import LossConfig
    from edgeseg.models.sparseinst.loss import sparseinst_losses
    from edgeseg.models.sparseinst.point_loss import sparseinst_point_losses

    torch.manual_seed(0)
    h, w = 8, 10
    cells = torch.zeros(h, w)
    cells[2:6, 3:8] = 1
    mask = cells.repeat_interleave(4, 0).repeat_interleave(4, 1)[None]  # [1, 32, 40]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    points = torch.stack([xs * 4 + 2.0, ys * 4 + 2.0], -1).reshape(1, -1, 2)
    outputs = {"pred_masks": torch.randn(1, 1, h, w), "pred_logits": torch.randn(1, 1, 3),
               "pred_scores": torch.randn(1, 1, 1)}
    labels = torch.tensor([2])
    full = sparseinst_losses(outputs, [{"labels": labels, "masks": mask}], LossConfig(), 3)
    pts = sparseinst_point_losses(outputs, [{"labels": labels, "points": points, "boxes": torch.tensor([[0, 0, 40, 32.0]]),
                                              "point_labels": cells.reshape(1, -1).long()}], LossConfig(), 3)
    assert pts["loss_mask"].item() == pytest.approx(full["loss_mask"].item(), rel=1e-5)
    assert pts["loss_ce"].item() == pytest.approx(full["loss_ce"].item(), rel=1e-6)
    assert pts["loss_objectness"].item() == pytest.approx(full["loss_objectness"].item(), rel=1e-5)


def test_sparseinst_point_loss_labels_the_outside_of_the_box_background():
    """A full-image mask spilling out of the object's box costs more than one that stays inside,
    with the same values at the annotated points: the box labels everything outside it."""
    from edgeseg.models.sparseinst.config import LossConfig
    from edgeseg.models.point_sup import outside_boxes
    from edgeseg.models.sparseinst.point_loss import sparseinst_point_losses

    away = outside_boxes(torch.tensor([[8.0, 4.0, 16.0, 12.0]]), 4, 6, 4)  # cells (i, j) centred at (4j + 2, 4i + 2)
    assert away.reshape(4, 6)[1:3, 2:4].eq(0).all() and away.sum() == 24 - 4
    inside = torch.full((1, 1, 8, 8), -4.0)
    inside[..., 2:5, 2:5] = 4.0
    spilling = inside.clone()
    spilling[..., 6:, :] = 4.0  # positive far below the box
    target = {"labels": torch.tensor([0]), "boxes": torch.tensor([[8.0, 8.0, 20.0, 20.0]]),
              "points": torch.tensor([[[10.0, 10.0], [18.0, 18.0], [9.0, 19.0]]]), "point_labels": torch.tensor([[1, 1, 1]])}
    losses = {}
    for name, masks in (("inside", inside), ("spilling", spilling)):
        outputs = {"pred_masks": masks, "pred_logits": torch.zeros(1, 1, 1), "pred_scores": torch.full((1, 1, 1), 3.0)}
        losses[name] = sparseinst_point_losses(outputs, [target], LossConfig(), 1)
    for key in ("loss_mask", "loss_dice", "loss_objectness"):
        assert losses["spilling"][key] > losses["inside"][key], key


def test_spill_outside_the_box_costs_the_same_on_any_image_size():
    """The outside BCE is in units of the box's area: the same spill next to the same box costs
    the same on a small and on a large image, and a box's worth of spill at p = 0.5 costs log 2."""
    from edgeseg.models.point_sup import outside_bce, outside_boxes

    box = torch.tensor([[8.0, 8.0, 16.0, 16.0]])  # 2x2 cells at stride 4
    costs = []
    for size in (8, 32):
        logits = torch.full((1, size, size), -30.0)
        logits[0, 4, 2:4] = 0.0  # two cells below the box at p = 0.5
        costs.append(outside_bce(logits.flatten(1), outside_boxes(box, size, size, 4)).item())
    assert costs[0] == pytest.approx(costs[1], rel=1e-5)
    assert costs[0] == pytest.approx(2 * math.log(2) / 4, rel=1e-4)


def test_the_box_bounds_the_mask_and_colours_join_it_when_asked():
    """With the box terms on, a mask filling its box costs less than one covering a third of it
    (same values at the points), and a mask split across one uniformly coloured object costs more
    pairwise than a whole one."""
    from edgeseg.models.sparseinst.config import LossConfig
    from edgeseg.models.sparseinst.point_loss import sparseinst_point_losses

    cfg = LossConfig(point_box_projection=1.0, point_pairwise=1.0)
    target = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.0, 0.0, 24.0, 24.0]]),
              "points": torch.tensor([[[2.0, 2.0]]]), "point_labels": torch.tensor([[1]])}
    images = torch.zeros(1, 3, 32, 32)  # one colour: every neighbour is similar
    losses = {}
    for name, cols in (("whole", 6), ("third", 2)):
        masks = torch.full((1, 1, 8, 8), -6.0)
        masks[..., :6, :cols] = 6.0
        outputs = {"pred_masks": masks, "pred_logits": torch.zeros(1, 1, 1), "pred_scores": torch.zeros(1, 1, 1),
                   "images": images}
        losses[name] = sparseinst_point_losses(outputs, [target], cfg, 1)
    assert losses["third"]["loss_box_projection"] > losses["whole"]["loss_box_projection"] + 0.3
    assert losses["third"]["loss_pairwise"] > losses["whole"]["loss_pairwise"]
    assert "loss_pairwise" not in sparseinst_point_losses(outputs, [target], LossConfig(), 1)
    # a batch with no object returns the same losses (the log and solver.ramp_losses read them by name)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4),
             "points": torch.zeros(0, 1, 2), "point_labels": torch.zeros(0, 1, dtype=torch.int64)}
    assert sparseinst_point_losses(outputs, [empty], cfg, 1).keys() == losses["whole"].keys()


def test_point_matching_weighs_the_class_by_its_own_exponent():
    """Query 0 fits the points better, query 1 is far surer of the class: the point matcher's
    ``point_matcher_beta`` decides between them, the mask-trained ``matcher_beta`` does not."""
    from edgeseg.models.sparseinst.config import LossConfig
    from edgeseg.models.sparseinst.point_loss import match_points

    masks = torch.full((2, 8, 8), -6.0)
    masks[0, 2:6, 2:6] = 6.0  # the object, cells 2-5
    masks[1, 2:4, 2:4] = 6.0  # a quarter of it: one point of four
    target = {"labels": torch.tensor([0]), "boxes": torch.tensor([[8.0, 8.0, 24.0, 24.0]]),
              "points": torch.tensor([[[10.0, 10.0], [22.0, 10.0], [10.0, 22.0], [22.0, 22.0]]]),
              "point_labels": torch.tensor([[1, 1, 1, 1]])}
    class_probs = torch.tensor([[0.1], [0.9]])
    chosen = {}
    for point_beta in (0.2, 2.0):
        for beta in (0.2, 2.0):
            rows, cols = match_points(masks, class_probs, target, LossConfig(matcher_beta=beta, point_matcher_beta=point_beta))[:2]
            chosen[point_beta, beta] = int(rows[0])
    assert chosen == {(0.2, 0.2): 0, (0.2, 2.0): 0, (2.0, 0.2): 1, (2.0, 2.0): 1}


def test_unknown_point_objectness_is_a_one_line_error():
    from edgeseg.errors import EdgesegError
    from edgeseg.models.sparseinst.config import LossConfig
    from edgeseg.models.sparseinst.point_loss import sparseinst_point_losses

    with pytest.raises(EdgesegError, match="point_objectness: unknown 'sometimes'; valid: iou, none"):
        sparseinst_point_losses({}, [], LossConfig(point_objectness="sometimes"), 1)


def test_mask_models_that_train_from_points():
    from edgeseg.config import load_recipe
    from edgeseg.models.registry import supervision_of

    assert "points" in supervision_of(load_recipe("sparseinst_shapes").model)
    assert "points" in supervision_of(load_recipe("adamixer_shapes").model)  # with its mask head
    assert "points" in supervision_of(load_recipe("solov2_shapes").model)
    assert "points" not in supervision_of(load_recipe("adamixer_shapes", ["model.adamixer.mask_head.enabled=false"]).model)
    # Transfiner's incoherence and refinement targets are read from full masks
    assert supervision_of(load_recipe("transfiner_thin_shapes").model) == ("masks",)
