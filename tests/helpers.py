"""Shared test fixtures: a tiny shapes dataset and a tiny, fast recipe."""

from __future__ import annotations

from pathlib import Path

from edgeseg.config import load_recipe

REPO = Path(__file__).resolve().parents[1]


def tiny_shapes(root: Path, num_train: int = 8, num_val: int = 4) -> Path:
    from edgeseg.data.shapes import generate_shapes

    if not (root / "train").exists():
        generate_shapes(root, num_train=num_train, num_val=num_val, size=256, seed=1)
    return root


def tiny_overrides(data_root: Path, out: Path, steps: int = 4, **extra) -> list[str]:
    """--set overrides turning the quickstart recipe into a seconds-long CPU run."""
    sets = {
        "data.train": data_root / "train", "data.val": data_root / "val", "data.generate": "",
        "data.min_size_train": "[96, 128]", "data.max_size_train": 160, "data.min_size_test": 128,
        "data.max_size_test": 160, "data.num_workers": 0,
        "model.backbone.weights": "", "model.encoder.num_channels": 32,
        "model.decoder.inst_dim": 32, "model.decoder.mask_dim": 32, "model.decoder.kernel_dim": 16,
        "model.decoder.num_masks": 8, "model.decoder.inst_convs": 1, "model.decoder.mask_convs": 1,
        "solver.ims_per_batch": 2, "solver.max_iter": steps, "solver.steps": f"[{steps - 1}]",
        "solver.warmup_iters": 2, "solver.amp": "off", "solver.max_minutes": 0,
        "train.output_dir": out, "train.checkpoint_period": 2, "train.eval_period": 0, "train.log_period": 1,
        "train.threads": 1,
    }
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


def tiny_recipe(data_root: Path, out: Path, steps: int = 4, **extra):
    return load_recipe("quickstart", tiny_overrides(data_root, out, steps, **extra))


def torch_raw(checkpoint, x_nchw):
    """PyTorch reference for a bundle: (scores [N, C], mask logits [N, h, w]) of one NCHW input."""
    import numpy as np
    import torch

    from edgeseg.engine.checkpoint import load_model

    model, _, _ = load_model(checkpoint)
    with torch.no_grad():
        scores, masks = model.scores_and_masks(model(torch.from_numpy(np.ascontiguousarray(x_nchw))))
    return scores[0].numpy(), masks[0].numpy()
