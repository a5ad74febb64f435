"""A self-training round: a model that detects turns its confident masks into pseudo-labels that
score like its own predictions and train like any dataset."""

from __future__ import annotations

import json

from edgeseg.data.coco import CocoDataset
from tests.test_cli import assert_one_line_error, run_cli


def test_a_detecting_model_writes_pseudo_labels_that_match_the_objects(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    out = tmp_path / "round1.json"
    done = run_cli("pseudolabel", checkpoint, data / "val", "--out", out, "--score", "0.3", "--against", data / "val")
    assert done.returncode == 0, done.stderr
    ap50 = float(done.stderr.split("AP50 ")[1].split()[0])
    assert ap50 > 30, done.stderr  # the tiny model detects its scenes; its masks must score as such
    written = json.loads(out.read_text())
    assert written["annotations"] and min(a["score"] for a in written["annotations"]) >= 0.3
    assert {a["category_id"] for a in written["annotations"]} == {1}  # class-agnostic
    assert len(CocoDataset(out)) == len(CocoDataset(data / "val"))


def test_bad_scores_and_targets_refused_in_one_line(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    assert_one_line_error(run_cli("pseudolabel", checkpoint, data / "val", "--out", tmp_path / "a.json", "--score", "2"),
                          "--score")
    assert_one_line_error(run_cli("pseudolabel", checkpoint, data / "val", "--out", data / "val" / "annotations.json"),
                          "annotation file")
