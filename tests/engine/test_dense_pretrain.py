"""Dense self-supervised pre-training: view correspondences by hand, and weights that Free Mask
and models load."""

from __future__ import annotations

import numpy as np
import torch

from edgeseg.engine.dense_pretrain import cell_positions, dense_loss, in_view, random_view, PretrainConfig
from tests.test_cli import assert_one_line_error, run_cli


def test_cells_map_between_views_through_the_image():
    left = torch.tensor([[0.0, 0.0, 0.5, 1.0]])  # the left half of the image
    pos = cell_positions(left, 1, 2)  # 1 x 2 grid: centres at x 1/8 and 3/8 of the image
    torch.testing.assert_close(pos, torch.tensor([[[0.125, 0.5], [0.375, 0.5]]]))
    whole_mirrored = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    uv, inside = in_view(pos, whole_mirrored)
    torch.testing.assert_close(uv, torch.tensor([[[0.875, 0.5], [0.625, 0.5]]]))
    assert inside.all()
    _, inside = in_view(pos, torch.tensor([[0.25, 0.0, 1.0, 1.0]]))
    assert inside.tolist() == [[False, True]]


def test_a_random_view_is_its_box_of_the_image():
    """Every column of a view shows the image where its box (mirrored or not) says it does."""
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255  # right half white
    cfg = PretrainConfig(size=64)
    rng = np.random.default_rng(0)
    mirrored = straddling = 0
    for _ in range(20):
        view, box = random_view(image, cfg, rng)
        assert view.shape == (64, 64, 3) and 0 <= min(box[0], box[2]) < max(box[0], box[2]) <= 1
        mirrored += box[0] > box[2]
        x = box[0] + (np.arange(64) + 0.5) / 64 * (box[2] - box[0])  # image x of each view column
        bright = view.mean((0, 2))
        if (x > 0.52).any() and (x < 0.48).any():  # the view shows both halves
            straddling += 1
            assert bright[x > 0.52].min() > bright[x < 0.48].max()
    assert 0 < mirrored < 20 and straddling >= 5  # the check above ran, on mirrored views too


def test_matching_features_give_a_lower_dense_loss_than_shuffled_ones():
    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(2, 8, 4, 4), dim=1)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    same = dense_loss(feats, feats, box, box, 0.2)
    shuffled = dense_loss(feats, feats.flip(-1), box, box, 0.2)
    assert same < shuffled


def test_the_command_writes_weights_that_freemask_loads(tmp_path):
    from edgeseg.data.shapes import generate_shapes
    from edgeseg.models.backbones import create_backbone

    generate_shapes(tmp_path / "data", num_train=4, num_val=0, style="textured")
    out = tmp_path / "ssl.pt"
    done = run_cli("pretrain", tmp_path / "data" / "train", "--out", out, "--steps", "2", "--batch", "2", "--size", "64")
    assert done.returncode == 0, done.stderr
    create_backbone("mobilenetv2", weights=str(out), out_features=("res2", "res5"))  # strict load, every level
    free = run_cli("freemask", tmp_path / "data" / "train", "--out", tmp_path / "f.json", "--weights", out)
    assert free.returncode == 0, free.stderr
    assert_one_line_error(run_cli("pretrain", tmp_path / "data" / "train", "--out", tmp_path / "w.txt"), "w.txt", ".pt")
