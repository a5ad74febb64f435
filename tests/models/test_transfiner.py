"""Mask Transfiner's static quadtree, incoherence targets and refinement, by hand-checkable cases."""

from __future__ import annotations

import torch

from edgeseg.models.transfiner.incoherence import incoherence_targets
from edgeseg.models.transfiner.quadtree import assemble, cell_centres, children, in_image, level_nodes


def test_children_and_centres_of_a_cell():
    cell = torch.tensor([[2 * 28 + 5]])  # row 2, column 5 of the 28 grid
    kids = children(cell, 2)
    assert sorted(kids[0].tolist()) == [4 * 56 + 10, 4 * 56 + 11, 5 * 56 + 10, 5 * 56 + 11]
    assert children(cell, 4).shape == (1, 16)
    uv = cell_centres(cell, 28)
    torch.testing.assert_close(uv, torch.tensor([[[5.5 / 28, 2.5 / 28]]]))
    xy = in_image(uv, torch.tensor([[10.0, 20.0, 38.0, 76.0]]))  # 28 x 56 pixel box
    torch.testing.assert_close(xy, torch.tensor([[[15.5, 25.0]]]))
    nodes = level_nodes(torch.rand(2, 784), [6, 3, 2])
    assert [n.shape for n in nodes] == [(2, 6), (2, 12), (2, 32)]
    # the finer levels refine children of the best cells of the level above
    assert set((nodes[2][0] // 112 // 4 * 28 + nodes[2][0] % 112 // 4).tolist()) <= set(nodes[0][0].tolist())


def test_assemble_overwrites_each_level_then_upsamples():
    coarse = torch.full((1, 28, 28), -5.0)
    level0 = torch.tensor([[3 * 28 + 7]])
    level2 = torch.tensor([[100 * 112 + 50]])
    out = assemble(coarse, [level0, torch.zeros(1, 0, dtype=torch.long), level2],
                   [torch.tensor([[5.0]]), torch.zeros(1, 0), torch.tensor([[9.0]])])
    assert out.shape == (1, 112, 112)
    assert out[0, 100, 50] == 9.0  # the finest level is written last, exactly
    centre = out[0, 3 * 4 + 1 : 3 * 4 + 3, 7 * 4 + 1 : 7 * 4 + 3]  # the refined 28 cell, upsampled twice
    assert centre.min() > 0 and centre.max() == out[0, :90].max()
    assert out[0, 60, 60] == -5.0  # untouched far away


def test_incoherence_marks_the_boundary_of_a_mask():
    masks = torch.zeros(1, 64, 64)
    masks[0, 16:48, 16:48] = 1  # a 32x32 square
    target = incoherence_targets(masks, torch.tensor([[16.0, 16.0, 48.0, 48.0]]))
    assert target.shape == (1, 28, 28)
    assert target[0, 0].all() and target[0, :, 0].all() and target[0, -1].all()  # the edges
    assert not target[0, 6:22, 6:22].any()  # the interior keeps its information


def test_training_losses_fit_one_batch(tmp_path):
    """Every Transfiner loss is present, and a few steps on one batch fit the refinement
    (measured: loss_refine 0.725 -> 0.17 in 6 steps)."""
    from edgeseg.config import load_recipe
    from edgeseg.data.coco import CocoDataset
    from edgeseg.engine.data import TrainStream, collate
    from edgeseg.models.registry import create_model
    from tests.helpers import tiny_overrides, tiny_shapes
    from tests.models.test_every_method import TINY

    data = tiny_shapes(tmp_path / "shapes")
    base, extra = TINY["transfiner"]
    shared = [s for s in tiny_overrides(data, tmp_path / "run")
              if not s.startswith("model.") or s.startswith(("model.backbone.", "model.transfiner."))]
    recipe = load_recipe(base, shared + extra)
    torch.manual_seed(0)
    model = create_model(recipe.model).train()
    images, targets = collate([TrainStream(CocoDataset(data / "train"), recipe.data, seed=0)[k] for k in (0, 1)])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 3e-3)
    history = []
    for _ in range(6):
        losses = model.losses(model(images), targets)
        history.append(losses["loss_refine"].item())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert {"loss_mask", "loss_mask_dice", "loss_incoherence", "loss_refine"} <= set(losses)
    assert history[-1] < 0.5 * history[0], history
