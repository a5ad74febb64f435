"""Free Mask: self-similarity masks by hand-checkable cases, and the command end to end."""

from __future__ import annotations

import json

import pytest
import torch

from edgeseg.pseudo.freemask import FreeMaskConfig, select, soft_masks
from tests.helpers import tiny_shapes
from tests.test_cli import assert_one_line_error, run_cli


def _two_regions():
    """Features [2, 4, 4]: the left half points one way, the right half another."""
    f = torch.zeros(2, 4, 4)
    f[0, :, :2] = 3.0
    f[1, :, 2:] = 0.5
    return f


def test_a_query_lights_up_the_region_it_belongs_to():
    soft = soft_masks(_two_regions(), [1.0])
    assert soft.shape == (16, 4, 4)
    left = torch.zeros(4, 4)
    left[:, :2] = 1
    torch.testing.assert_close(soft[0], left)  # query (0, 0): cosine 1 on the left, 0 on the right
    torch.testing.assert_close(soft[3], 1 - left)


def test_pooled_queries_add_masks_and_duplicates_decay():
    soft = soft_masks(_two_regions(), [1.0, 0.5])
    assert soft.shape == (16 + 4, 4, 4)
    masks, scores = select(soft, FreeMaskConfig(min_area=0.0, max_area=1.0, top=20))
    # every query reproduces one of the two halves: the best of each keeps maskness 1, the copies
    # of a half decay (IoU 1 with a mask above them), so the two halves come first
    assert scores[:2].tolist() == pytest.approx([1.0, 1.0]) and (scores[2:] < 0.2).all()
    assert {tuple(m[:, 0].round().tolist()) for m in masks[:2]} == {(1.0,) * 4, (0.0,) * 4}


def test_own_region_separates_look_alike_objects():
    """Two blobs of the same features on a background: a query's whole mask is both blobs (they
    look alike), its own region only the blob it stands on."""
    f = torch.zeros(2, 6, 8)
    f[1] = 1.0
    f[0, 1:3, 1:3] = f[0, 3:5, 5:7] = 4.0  # two 2x2 "nuclei"
    soft = soft_masks(f, [1.0, 0.5])
    from edgeseg.pseudo.freemask import query_cells

    cells = query_cells((6, 8), [1.0, 0.5])
    assert len(cells) == len(soft) == 48 + 12 and tuple(cells[9]) == (1, 1) and tuple(cells[48]) == (1, 1)
    assert len(query_cells((7, 9), [1.0, 0.5, 0.25])) == len(soft_masks(torch.rand(2, 7, 9), [1.0, 0.5, 0.25]))
    whole, _ = select(soft, FreeMaskConfig(min_area=0.0, top=5, scales=[1.0, 0.5]))
    own, scores = select(soft, FreeMaskConfig(min_area=0.0, top=5, scales=[1.0, 0.5], own_region=True))
    assert (whole[0] > 0.5).sum() == 8  # both blobs in one mask
    blobs = {tuple(torch.nonzero(m > 0.5).min(0).values.tolist()) for m in own[:2]}
    assert blobs == {(1, 1), (3, 5)} and all((m > 0.5).sum() == 4 for m in own[:2])
    assert scores[:2].tolist() == pytest.approx([1.0, 1.0])


def test_size_and_maskness_filters():
    soft = soft_masks(_two_regions(), [1.0])
    assert len(select(soft, FreeMaskConfig(max_area=0.4))[0]) == 0  # each half is 50% of the image
    assert len(select(soft, FreeMaskConfig(max_area=0.6, top=1))[0]) == 1


def test_the_command_writes_a_trainable_coco_set_and_scores_it(tmp_path):
    from edgeseg.data.coco import CocoDataset

    data = tiny_shapes(tmp_path / "shapes")
    out = tmp_path / "free" / "pseudo.json"
    done = run_cli("freemask", data / "val", "--out", out, "--against", data / "val", "--min-maskness", "0.5")
    assert done.returncode == 0, done.stderr
    assert "class-agnostic mask AP" in done.stderr
    written = json.loads(out.read_text())
    assert written["categories"] == [{"id": 1, "name": "object", "supercategory": ""}]
    assert written["annotations"] and all(0 < a["score"] <= 1 for a in written["annotations"])
    assert written["info"]["edgeseg_pseudo_labels"]["weights"] == "imagenet"
    ds = CocoDataset(out)  # file names resolve from the output's folder; masks decode
    assert len(ds) == 4 and ds.supervision == "masks" and len(ds.load_instances(0)["labels"]) > 0


def test_the_command_refuses_bad_input_in_one_line(tmp_path):
    data = tiny_shapes(tmp_path / "shapes")
    gt = data / "val" / "annotations.json"
    before = gt.read_bytes()
    assert_one_line_error(run_cli("freemask", data / "val", "--out", gt), "annotation file")
    assert gt.read_bytes() == before
    assert_one_line_error(run_cli("freemask", data / "val", "--out", tmp_path / "x.txt"), "x.txt", ".json")
    assert_one_line_error(run_cli("freemask", data / "val", "--out", tmp_path / "x.json", "--threshold", "1.5"),
                          "threshold")
    assert_one_line_error(run_cli("freemask", data / "val", "--out", tmp_path / "x.json", "--weights",
                                  tmp_path / "missing.pt"), "missing.pt")
