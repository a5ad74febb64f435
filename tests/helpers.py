"""Shared test fixtures: a tiny shapes dataset and a tiny, fast recipe."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from edgeseg.config import load_recipe

REPO = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(module: str, reason: str | None = None):
    """Import ``module``; where it is missing skip the test, except under CI=true: CI installs every
    extra, so there a missing (or broken) one fails instead of turning into a green run."""
    if in_ci():
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=reason)


def installed(module: str, reason: str | None = None):
    """``pytest.mark.skipif`` the module is missing -- never under CI=true (the test then fails)."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing and not in_ci(), reason=reason or f"{module} is not installed")


def skip_or_fail(reason: str):
    """Skip for a missing test resource; under CI=true, where it must be present, fail."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
    pytest.skip(reason)


def tiny_shapes(root: Path, num_train: int = 8, num_val: int = 4) -> Path:
    from edgeseg.data.shapes import generate_shapes

    if not (root / "train").exists():
        generate_shapes(root, num_train=num_train, num_val=num_val, size=256, seed=1)
    return root


def tiny_overrides(data_root: Path, out: Path, steps: int = 4, **extra) -> list[str]:
    """--set overrides turning the sparseinst_shapes recipe into a seconds-long CPU run."""
    sets = {
        "data.train": data_root / "train", "data.val": data_root / "val", "data.generate": "",
        "data.min_size_train": "[96, 128]", "data.max_size_train": 160, "data.min_size_test": 128,
        "data.max_size_test": 160, "data.num_workers": 0,
        "model.backbone.weights": "", "model.sparseinst.encoder.num_channels": 32,
        "model.sparseinst.decoder.inst_dim": 32, "model.sparseinst.decoder.mask_dim": 32, "model.sparseinst.decoder.kernel_dim": 16,
        "model.sparseinst.decoder.num_masks": 8, "model.sparseinst.decoder.inst_convs": 1, "model.sparseinst.decoder.mask_convs": 1,
        "solver.ims_per_batch": 2, "solver.max_iter": steps, "solver.steps": f"[{steps - 1}]",
        "solver.warmup_iters": 2, "solver.amp": "off", "solver.max_minutes": 0,
        "train.output_dir": out, "train.checkpoint_period": 2, "train.eval_period": 0, "train.log_period": 1,
        "train.threads": 1,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def tiny_recipe(data_root: Path, out: Path, steps: int = 4, **extra):
    return load_recipe("sparseinst_shapes", tiny_overrides(data_root, out, steps, **extra))


def torch_raw(checkpoint, x_nchw):
    """PyTorch reference for a bundle: (scores [N, C], mask logits [N, h, w]) of one NCHW input."""
    import numpy as np
    import torch

    from edgeseg.engine.checkpoint import load_model

    model, _, _ = load_model(checkpoint)
    with torch.no_grad():
        outputs = model.deploy_outputs(model(torch.from_numpy(np.ascontiguousarray(x_nchw))))
    return outputs["scores"][0].numpy(), outputs["masks"][0].numpy()


def raw_outputs(predictor, x):
    """(scores, masks) of a query_masks predictor's raw outputs (returned by name)."""
    outputs = predictor.raw(x)
    return outputs["scores"], outputs["masks"]


# On top of ``tiny_overrides``: the recipe of the shared test model (tests/conftest.py ``tiny_model``).
# Measured on 2 cores: ~10 s of training, mask AP ~43 (AP50 ~90) on ``scene_shapes``, and detections
# above the 0.3 drawing threshold on every image. A random backbone needs far more steps to score anything.
DETECTING_STEPS = 80
DETECTING = {"model.backbone.weights": "imagenet", "data.min_size_train": "[128]", "data.flip": "false",
             "solver.ims_per_batch": 4, "solver.base_lr": 0.01, "train.checkpoint_period": DETECTING_STEPS}


def scene_shapes(root: Path) -> Path:
    """A 4-image shapes dataset whose images are the scenes `edgeseg demo` shows (the first scene
    of ``SyntheticSource`` seeds 0 and 3, scenes 1 and 2 of seed 0), the same in train and val:
    a model overfitted on it detects the objects of the demo frames and scores AP > 0 on val."""
    import numpy as np

    from edgeseg.data.coco_writer import CocoWriter
    from edgeseg.data.shapes import CLASS_NAMES, render_image

    for split in ("train", "val"):
        if not (root / split).exists():
            with CocoWriter(root / split, CLASS_NAMES) as writer:
                for i, (seed, scene) in enumerate([(0, 0), (3, 0), (0, 1), (0, 2)]):
                    image, instances = render_image(np.random.default_rng([seed, scene]), 256)
                    writer.add(f"{i:06d}.png", image, instances)
    return root


def fp32_agreement(predictor, checkpoint, data_root: Path, hw: tuple[int, int] = (128, 128)) -> dict:
    """How closely a reduced-precision bundle follows the FP32 (PyTorch) model on the same inputs:
    the val images fitted into ``hw``. Returns the correlation of all class scores, the largest score
    difference, and the mean IoU (stride-4 masks thresholded at 0.45) over the FP32 detections
    (queries scoring >= 0.3) -- a wrong scale or zero point moves scores and masks far more."""
    import numpy as np

    from edgeseg.data.coco import CocoDataset
    from edgeseg.preprocess import preprocess

    val = CocoDataset(data_root / "val")
    nhwc = predictor.bundle.input.get("layout", "NCHW") == "NHWC"
    ours, ref, ious = [], [], []
    for i in range(len(val)):
        x, _ = preprocess(val.load_image(i), input_hw=hw)
        scores, masks = raw_outputs(predictor, x.transpose(0, 2, 3, 1).copy() if nhwc else x)
        ref_scores, ref_masks = torch_raw(checkpoint, x)
        ours.append(scores.ravel())
        ref.append(ref_scores.ravel())
        for q in np.flatnonzero(ref_scores.max(1) >= 0.3):
            a, b = ref_masks[q] > np.log(0.45 / 0.55), masks[q] > np.log(0.45 / 0.55)  # sigmoid > 0.45
            union = (a | b).sum()
            ious.append((a & b).sum() / union if union else 1.0)  # both empty: they agree
    ours, ref = np.concatenate(ours), np.concatenate(ref)
    assert len(ious) >= 4, f"the FP32 model detects only {len(ious)} objects: nothing to compare"
    return {"score_corr": float(np.corrcoef(ours, ref)[0, 1]), "score_max_diff": float(np.abs(ours - ref).max()),
            "mask_iou": float(np.mean(ious)), "detections": len(ious)}


def assert_agrees(agreement: dict, corr: float, max_diff: float, iou: float) -> None:
    assert agreement["score_corr"] >= corr and agreement["score_max_diff"] <= max_diff \
        and agreement["mask_iou"] >= iou, f"{agreement} (bounds: corr >= {corr}, diff <= {max_diff}, IoU >= {iou})"
