"""SOLOv2's target assignment, losses and static inference graph, by hand-checkable cases."""

from __future__ import annotations

import math

import pytest
import torch

from edgeseg.models.solov2.inference import cell_strides, query_masks
from edgeseg.models.solov2.targets import assign, mask_boxes, mass_centres, objects

GRIDS = [8, 4]
RANGES = [[1, 40], [30, 200]]


def _masks(*boxes, size=64):
    out = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
    for m, (x0, y0, x1, y1) in zip(out, boxes):
        m[y0:y1, x0:x1] = 1
    return out


def _assign(masks, labels, grids, ranges, sigma, background):
    boxes, centres = objects({"masks": masks})
    return assign(boxes, centres, labels, masks.shape[-2:], grids, ranges, sigma, background)


def test_boxes_and_centres_of_masks_and_empty_masks():
    masks = _masks((3, 5, 10, 20), (0, 0, 0, 0))
    assert mask_boxes(masks.bool()).tolist() == [[3, 5, 10, 20], [0, 0, 0, 0]]
    assert mass_centres(masks.bool())[0].tolist() == [6.5, 12.5]


def test_from_points_the_box_gives_the_centre():
    boxes, centres = objects({"boxes": torch.tensor([[2.0, 4.0, 10.0, 8.0]]), "points": torch.zeros(1, 3, 2)})
    assert boxes.tolist() == [[2, 4, 10, 8]] and centres.tolist() == [[6, 6]]


def test_an_object_claims_its_centre_cells_on_the_levels_of_its_scale():
    # a 16x16 square centred at (28, 44) in a 64 px image: scale 16, only level 0 (8x8 cells of 8 px)
    labels, owner = _assign(_masks((20, 36, 36, 52)), torch.tensor([2]), GRIDS, RANGES, sigma=0.2, background=5)
    level0 = owner[:64].reshape(8, 8)
    # centre (28, 44) -> cell row 5, col 3; sigma 0.2 of 16 px: +-1.6 px stays inside that cell
    assert torch.nonzero(level0 >= 0).tolist() == [[5, 3]]
    assert labels[5 * 8 + 3] == 2 and (labels[64:] == 5).all() and (owner[64:] == -1).all()


def test_a_large_object_claims_at_most_three_by_three_cells_and_later_objects_win():
    big = (0, 0, 64, 64)  # scale 64: level 1 only; sigma 1.0 would span every cell
    small = (28, 28, 36, 36)
    labels, owner = _assign(_masks(big, small), torch.tensor([0, 1]), GRIDS, [[1, 10], [5, 200]], sigma=1.0,
                             background=3)
    level1 = owner[64:].reshape(4, 4)
    # both centred at (32, 32) -> cell (2, 2): the big one spans every cell, clipped to rows and
    # columns 1-3; the small one (scale 8, also level 1) spans rows and columns 1-2 and wins them
    assert (level1[0, :] == -1).all() and (level1[:, 0] == -1).all()
    assert (level1[1:3, 1:3] == 1).all() and (level1[3, 1:] == 0).all() and (level1[1:, 3] == 0).all()
    assert (labels[64:].reshape(4, 4)[1:3, 1:3] == 1).all() and labels[64 + 15] == 0


def _graph_inputs():
    """Two candidate cells with the same mask (a duplicate), one with another mask, one too small."""
    e, h, w = 3, 8, 8
    features = torch.zeros(1, e, h, w)
    features[0, 0, :4, :4] = 1  # channel 0: the top-left square
    features[0, 1, 4:, 4:] = 1  # channel 1: the bottom-right square
    features[0, 2, 0, 7] = 1  # channel 2: one cell
    kernels = torch.full((1, 5, e), -20.0)
    kernels[0, 0, 0] = kernels[0, 1, 0] = 40.0  # cells 0 and 1: top-left (duplicates)
    kernels[0, 2, 1] = 40.0  # cell 2: bottom-right
    kernels[0, 3, 2] = 40.0  # cell 3: one stride-4 cell, under its level's stride
    logits = torch.full((1, 5, 2), -10.0)
    logits[0, :4, 0] = torch.tensor([2.0, 1.0, 0.5, 3.0])
    return logits, kernels, features


def test_the_graph_keeps_the_best_of_duplicates_decays_the_other_and_drops_small_masks():
    logits, kernels, features = _graph_inputs()
    strides = torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0])
    out = query_masks(logits, kernels, features, strides, candidates=4, mask_threshold=0.5, kernel="gaussian", sigma=2.0)
    scores, masks = out["scores"][0], out["masks"][0].sigmoid() > 0.5
    p = torch.sigmoid(torch.tensor([2.0, 1.0, 0.5])).tolist()
    # in score order (cell 3 scores highest but covers 1 cell, under its stride: 0, last): cell 0;
    # cell 1, a duplicate of 0 (IoU 1) decayed by exp(-2); cell 2, another mask, not decayed
    assert masks[0, :4, :4].all() and masks[1, :4, :4].all() and masks[2, 4:, 4:].all() and masks[3].sum() == 1
    assert scores[:, 0].tolist() == pytest.approx([p[0], p[1] * math.exp(-2), p[2], 0.0], abs=1e-6)
    assert (scores[:, 1] == 0).all()


def test_cell_strides_follow_the_levels():
    assert cell_strides([2, 1], [8, 32]).tolist() == [8, 8, 8, 8, 32]


TINY = ["model.backbone.weights=", "model.solov2.fpn_channels=16", "model.solov2.head_channels=16",
        "model.solov2.mask_channels=16", "model.solov2.kernel_dim=16", "model.solov2.norm_groups=4"]


def _fit(extra: list[str], steps: int = 25):
    """(first losses, last losses) of ``steps`` Adam steps of a tiny SOLOv2 on one 64 px image."""
    from edgeseg.config import load_recipe
    from edgeseg.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(load_recipe("solov2_shapes", TINY + extra).model).train()
    images = torch.randn(1, 3, 64, 64)
    targets = [{"labels": torch.tensor([0, 1]), "masks": _masks((4, 4, 20, 24), (30, 30, 60, 62))}]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(steps):
        losses = model.losses(model(images), targets)
        first = first or {k: v.item() for k, v in losses.items()}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    return first, {k: v.item() for k, v in losses.items()}


def test_losses_fit_one_batch():
    first, last = _fit([])
    assert last["loss_dice"] < 0.7 * first["loss_dice"] and last["loss_cate"] < first["loss_cate"], (first, last)


def test_projection_losses_fit_one_batch():
    first, last = _fit(["model.solov2.loss.mask_loss=projection"])
    assert set(last) == {"loss_cate", "loss_dice", "loss_mean_projection", "loss_pairwise"}
    assert last["loss_dice"] < 0.7 * first["loss_dice"], (first, last)


def test_capped_mask_cells_are_a_uniform_draw_over_the_batch():
    from edgeseg.models.solov2.loss import sample_cells

    positives = [torch.arange(10), torch.arange(0), torch.arange(100, 130)]
    assert sample_cells(positives, 0) is positives and sample_cells(positives, 40) is positives
    torch.manual_seed(0)
    kept = [torch.cat(sample_cells(positives, 8)) for _ in range(400)]
    assert all(len(k) == 8 for k in kept)
    chosen = sample_cells(positives, 8)
    assert all(set(c.tolist()) <= set(p.tolist()) for c, p in zip(chosen, positives))
    share = torch.stack([(k < 100).float().mean() for k in kept]).mean()  # image 0 holds 10 of 40 cells
    assert abs(float(share) - 0.25) < 0.03, share


def test_capped_mask_cells_still_fit_one_batch():
    first, last = _fit(["model.solov2.loss.mask_loss=projection", "model.solov2.loss.max_mask_cells=3"])
    assert last["loss_dice"] < 0.7 * first["loss_dice"], (first, last)


def test_tflite_runs_the_static_graph_as_pytorch_does(tmp_path):
    """TopK, gathers, the dynamic-kernel matmul and Matrix NMS convert to TFLite (the every-method
    test covers ONNX Runtime, OpenVINO and the Jetson's ONNX)."""
    import numpy as np

    from edgeseg.config import load_recipe
    from edgeseg.engine.checkpoint import save_checkpoint
    from edgeseg.export import export_bundle
    from edgeseg.models.registry import create_model
    from edgeseg.runtime import Predictor
    from tests.helpers import require

    require("litert_torch")
    recipe = load_recipe("solov2_shapes", TINY + ["model.solov2.head_convs=1", "model.solov2.grids=[12,8,4]",
                                                  "model.solov2.candidates=30"])
    torch.manual_seed(0)
    model = create_model(recipe.model).eval()
    save_checkpoint(tmp_path / "m.pt", model, recipe, ["circle", "triangle", "rectangle", "star"])
    export_bundle(tmp_path / "m.pt", "tflite", tmp_path / "tfl", precision="fp32", imgsz="128", log=lambda *_: None)
    x = np.random.default_rng(0).standard_normal((1, 128, 128, 3)).astype(np.float32)
    got = Predictor(tmp_path / "tfl", threads=1).raw(x)
    with torch.no_grad():
        want = model.deploy_outputs(model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())))
    for key in ("scores", "masks"):
        ref = want[key][0].numpy()
        assert np.abs(got[key] - ref).max() / (1 + np.abs(ref).max()) <= 1e-4, key  # measured 3.4e-7
