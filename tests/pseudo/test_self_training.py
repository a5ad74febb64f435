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


def test_fitted_score_keeps_the_most_confident_at_the_asked_density():
    import pytest

    from edgeseg.errors import EdgesegError
    from edgeseg.pseudo.self_training import fitted_score

    scores = [0.9, 0.1, 0.3, 0.2, 0.05, 0.6]
    assert fitted_score(scores, per_image=1.5, images=2) == 0.3  # the 3 best
    assert fitted_score(scores, per_image=10, images=2) == 0.05  # fewer masks than asked: all of them
    assert fitted_score([], per_image=1, images=2) == 1.0
    with pytest.raises(EdgesegError, match="--per-image"):
        fitted_score(scores, per_image=0, images=2)


def test_per_image_writes_that_many_masks(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    out = tmp_path / "fitted.json"
    done = run_cli("pseudolabel", checkpoint, data / "val", "--out", out, "--per-image", "2")
    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    kept = written["annotations"]
    assert len(kept) == 2 * len(written["images"])  # the tiny model finds more than 2 candidates per image
    assert written["info"]["edgeseg_pseudo_labels"]["score"] == min(a["score"] for a in kept)
    assert [a["id"] for a in kept] == list(range(1, len(kept) + 1))
    # a bad density is refused in one line
    assert_one_line_error(run_cli("pseudolabel", checkpoint, data / "val", "--out", tmp_path / "b.json",
                                  "--per-image", "0"), "--per-image")


def test_keep_setting():
    import pytest

    from edgeseg.errors import EdgesegError
    from edgeseg.pseudo.pipeline import keep_setting

    assert keep_setting("auto") is None and keep_setting("0.25") == 0.25
    for bad in ("high", "1.5"):
        with pytest.raises(EdgesegError, match="--keep"):
            keep_setting(bad)
