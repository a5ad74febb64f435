"""Import official hustvl/SparseInst checkpoints (detectron2 format) as edgeseg checkpoints.

Our parameter names are the official ones, so conversion is: pick the matching recipe, drop
keys that are not parameters (``num_batches_tracked``, pixel mean/std), and load strictly.
Writing the result as an edgeseg checkpoint is ``edgeseg.workflows.import_official``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgeseg.data.coco_names import COCO_CLASSES
from edgeseg.errors import fail
from edgeseg.models.weights import check_finite, safe_load

CLASS_NAMES = COCO_CLASSES
OFFICIAL_RECIPES = {
    "r50_giam": "sparseinst_r50_giam_coco",
    "r50vd_giam": "sparseinst_r50vd_giam_coco",
    "r50_iam": "sparseinst_r50_iam_coco",
    "r50_giam_soft": "sparseinst_r50_giam_soft_coco",
}
DROPPED_SUFFIXES = ("num_batches_tracked",)
DROPPED_KEYS = ("pixel_mean", "pixel_std")


def read_official(path: Path) -> dict:
    state = safe_load(path, "official checkpoint")  # never unpickled freely: nothing in it can run
    weights = state.get("model", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise fail(path, "not a detectron2 checkpoint: expected {'model': state_dict}")
    out = {}
    for key, value in weights.items():
        key = key.removeprefix("module.")
        if key.endswith(DROPPED_SUFFIXES) or key in DROPPED_KEYS:
            continue
        out[key] = value
    check_finite(out, path)
    return out
