"""FreeSOLO end to end on a few textured images: free masks, a round, a self-training round, each
an ordinary training on a pseudo-label file; a rerun reuses what is done."""

from __future__ import annotations

import json

from edgeseg.data.coco import CocoDataset
from edgeseg.data.shapes import generate_shapes
from edgeseg.pseudo.freemask import FreeMaskConfig
from edgeseg.pseudo.pipeline import run_freesolo

TINY_SOLO = ["model.solov2.fpn_channels=16", "model.solov2.head_channels=16", "model.solov2.mask_channels=16",
             "model.solov2.kernel_dim=16", "model.solov2.norm_groups=4", "model.solov2.head_convs=1",
             "model.backbone.weights=", "data.min_size_train=[128]", "data.max_size_train=160", "data.min_size_test=128",
             "data.max_size_test=160", "data.num_workers=0", "data.generate=", "solver.ims_per_batch=2",
             "solver.max_iter=3", "solver.warmup_iters=1", "solver.max_minutes=0", "train.checkpoint_period=2",
             "train.log_period=1", "train.threads=1", "model.inference.cls_threshold=0.0"]


def test_free_masks_then_two_rounds_with_no_annotation(tmp_path):
    generate_shapes(tmp_path / "data", num_train=4, num_val=0, style="textured")
    lines = []
    # keep everything scored over 0: an untrained tiny model must still hand round 1 some labels
    checkpoints = run_freesolo(tmp_path / "data" / "train", tmp_path / "run", rounds=1, keep=0.0, overrides=TINY_SOLO,
                               freemask=FreeMaskConfig(min_maskness=0.5), log=lines.append)
    assert [c.relative_to(tmp_path / "run").as_posix() for c in checkpoints] == ["round0/last.pt", "round1/last.pt"]
    assert all(c.is_file() for c in checkpoints)
    free = CocoDataset(tmp_path / "run" / "free_masks.json")
    round1 = json.loads((tmp_path / "run" / "round1_labels.json").read_text())
    assert free.class_names == ["object"] and len(free) == 4 and round1["annotations"]
    assert round1["info"]["edgeseg_pseudo_labels"]["method"] == "self-training"
    assert any("round 1: training on" in str(line) for line in lines)
    lines.clear()
    run_freesolo(tmp_path / "data" / "train", tmp_path / "run", rounds=1, keep=0.0, overrides=TINY_SOLO,
                 log=lines.append)
    assert not any("training" in str(line) for line in lines), lines  # everything reused
