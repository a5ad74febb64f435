"""Mask Transfiner's static quadtree, incoherence targets and refinement, by hand-checkable cases."""

from __future__ import annotations

import torch

from edgeseg.models.transfiner.incoherence import incoherence_targets
from edgeseg.models.transfiner.quadtree import assemble, cell_centres, children, in_image, level_nodes, upsample


def test_children_and_centres_of_a_cell():
    cell = torch.tensor([[2 * 28 + 5]])  # row 2, column 5 of the 28 grid
    kids = children(cell, 2)
    assert sorted(kids[0].tolist()) == [4 * 56 + 10, 4 * 56 + 11, 5 * 56 + 10, 5 * 56 + 11]
    assert children(cell, 4).shape == (1, 16)
    uv = cell_centres(cell, 28)
    torch.testing.assert_close(uv, torch.tensor([[[5.5 / 28, 2.5 / 28]]]))
    xy = in_image(uv, torch.tensor([[10.0, 20.0, 38.0, 76.0]]))  # 28 x 56 pixel box
    torch.testing.assert_close(xy, torch.tensor([[[15.5, 25.0]]]))
    nodes, weights = level_nodes(torch.rand(2, 784), [6, 3, 2])
    assert [n.shape for n in nodes] == [(2, 6), (2, 12), (2, 32)]
    assert [w.shape for w in weights] == [n.shape for n in nodes] and all(bool((w == 1).all()) for w in weights)
    # the finer levels refine children of the best cells of the level above
    assert set((nodes[2][0] // 112 // 4 * 28 + nodes[2][0] % 112 // 4).tolist()) <= set(nodes[0][0].tolist())


def test_assemble_overwrites_each_level_then_upsamples():
    coarse = torch.full((1, 28, 28), -5.0)
    level0 = torch.tensor([[3 * 28 + 7]])
    level2 = torch.tensor([[100 * 112 + 50]])
    out = assemble(coarse, [level0, torch.zeros(1, 0, dtype=torch.long), level2],
                   [torch.tensor([[5.0]]), torch.zeros(1, 0), torch.tensor([[9.0]])])
    assert out.shape == (1, 112, 112)  # probabilities
    assert out[0, 100, 50] == torch.sigmoid(torch.tensor(9.0))  # the finest level is written last, exactly
    centre = out[0, 3 * 4 + 1 : 3 * 4 + 3, 7 * 4 + 1 : 7 * 4 + 3]  # the refined 28 cell, upsampled twice
    assert centre.min() > 0.5 and centre.max() == out[0, :90].max()
    assert out[0, 60, 60] == torch.sigmoid(torch.tensor(-5.0))  # untouched far away

    # levels are upsampled as probabilities: the right half of a cell at logit 5 next to one at -5
    # is 0.75 * sigmoid(5) + 0.25 * sigmoid(-5) = 0.7466 (as logits it would be sigmoid(2.5) = 0.924)
    coarse = torch.full((1, 28, 28), -5.0)
    coarse[0, :, :8] = 5.0
    empty = torch.zeros(1, 0, dtype=torch.long)
    out = assemble(coarse, [empty] * 3, [torch.zeros(1, 0)] * 3)
    half = upsample(coarse.sigmoid(), 56)
    assert abs(half[0, 10, 15].item() - 0.7466) < 1e-4
    torch.testing.assert_close(out, upsample(half, 112))


def test_node_weights_fade_toward_each_levels_cut():
    scores = torch.zeros(1, 784)
    scores[0, :6] = torch.tensor([0.9, 0.35, 0.3, 0.2, 0.12, 0.1])
    nodes, weights = level_nodes(scores, [3, 2, 1], fade=0.1)
    assert nodes[0].tolist() == [[0, 1, 2]]
    # level 28 cuts at the 4th best score (0.2): 0.3 is (0.3 - 0.2 - 1/256) / 0.1 = 0.96 of the way in
    torch.testing.assert_close(weights[0], torch.tensor([[1.0, 1.0, 0.9609375]]))
    # level 56 cuts at 0.3, each weight shared by a cell's 4 children; level 112 at 0.35
    torch.testing.assert_close(weights[1], torch.tensor([[1.0] * 4 + [0.4609375] * 4]))
    torch.testing.assert_close(weights[2], torch.ones(1, 16))
    coarse = torch.zeros(1, 28, 28)
    out = assemble(coarse, nodes, [torch.full(n.shape, 4.0) for n in nodes],
                   [torch.zeros_like(w) for w in weights])
    assert (out == 0.5).all()  # weight 0 leaves the coarse mask as it was


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


def test_runtime_noise_at_the_cut_cannot_flip_a_refined_node():
    """Two cells tie at a level's cut within 1e-7 (noise between PyTorch and a runtime): with a
    hard cut the mask jumps where one is refined instead of the other; faded, it does not move."""
    from edgeseg.config import load_recipe
    from edgeseg.models.registry import create_model
    from tests.models.test_every_method import TINY

    base, extra = TINY["transfiner"]
    torch.manual_seed(0)
    jumps = {}
    for fade in (0.0, 0.05):
        recipe = load_recipe(base, extra + ["model.num_classes=4", f"model.transfiner.refine.fade={fade}"])
        torch.manual_seed(0)
        model = create_model(recipe.model).eval()
        torch.manual_seed(1)
        feature, fine = torch.randn(1, 32, 8, 8), torch.randn(1, 8, 32, 32)
        coarse = torch.randn(1, 28, 28)
        incoherence = torch.rand(1, 784) * 0.5
        incoherence[0, :7] = 0.9  # 7 of the 8 level-28 nodes: the 8th is cell 100 or cell 200
        incoherence[0, 100] = incoherence[0, 200] = 0.75  # a bucket boundary of the ranking keys
        box = torch.tensor([[4.0, 4.0, 60.0, 60.0]])
        outputs = []
        for noise in (1e-7, -1e-7):  # cell 100 just above cell 200, then just below
            scores = incoherence.clone()
            scores[0, 100] += noise
            with torch.no_grad():
                outputs.append(model.refine(coarse, scores.reshape(1, 28, 28), box, feature, fine, (64, 64))[0])
        jumps[fade] = (outputs[0] - outputs[1]).abs().max().item()
    assert jumps[0.0] > 1e-2, jumps  # the hard cut swaps a refined node
    assert jumps[0.05] < 1e-5, jumps


def test_tflite_bundle_runs_and_matches_pytorch(tmp_path):
    """The refinement (TopK over cells and detections, the faded cut, fused attention) converts
    with litert-torch into ops LiteRT runs (a TopK whose values alone were used became a SORT it
    cannot load), with PyTorch's outputs."""
    import numpy as np

    from edgeseg.config import load_recipe
    from edgeseg.engine.checkpoint import save_checkpoint
    from edgeseg.models.registry import create_model
    from edgeseg.runtime import Predictor
    from tests.helpers import require
    from tests.models.test_every_method import TINY
    from tests.test_cli import run_cli

    require("litert_torch")
    base, extra = TINY["transfiner"]
    recipe = load_recipe(base, extra + ["model.num_classes=4", "model.backbone.weights="])
    torch.manual_seed(0)
    model = create_model(recipe.model).eval()
    save_checkpoint(tmp_path / "m.pt", model, recipe, ["spiky_star", "ring", "fork", "stroke"])
    # in a child process: litert-torch starts JAX threads, and later tests fork (peak-memory probes)
    done = run_cli("export", tmp_path / "m.pt", "--target", "tflite", "--imgsz", "128", "--out", tmp_path / "tfl")
    assert done.returncode == 0, done.stderr[-2000:]
    x = np.random.default_rng(0).standard_normal((1, 128, 128, 3)).astype(np.float32)
    got = Predictor(tmp_path / "tfl", threads=1).raw(x)
    with torch.no_grad():
        want = model.deploy_outputs(model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())))
    for key in ("scores", "boxes", "masks"):
        ref = want[key][0].numpy()
        if key == "masks":
            got[key], ref = 1 / (1 + np.exp(-got[key])), 1 / (1 + np.exp(-ref))  # compared as probabilities
        assert np.abs(got[key] - ref).max() / (1 + np.abs(ref).max()) <= 1e-4, key
