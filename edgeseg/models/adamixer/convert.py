"""Import official MCG-NJU/AdaMixer checkpoints (mmdet format ``{'meta', 'state_dict'}``).

The neck and decoder keep the official names; mmdet's torchvision-style ResNet keys are renamed
to edgeseg's detectron2-style backbone (``layer1.0.bn2`` -> ``res2.0.conv2.norm``). Then the
matching recipe is built and the weights load strictly.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from edgeseg.data.coco_names import COCO_CLASSES
from edgeseg.errors import fail
from edgeseg.models.weights import check_finite, safe_load

CLASS_NAMES = COCO_CLASSES
OFFICIAL_RECIPES = {"adamixer_r50_1x": "adamixer_r50_1x_coco"}

_BACKBONE_RULES = [
    (re.compile(r"^backbone\.conv1\.weight$"), "backbone.stem.conv1.weight"),
    (re.compile(r"^backbone\.bn1\.(\w+)$"), r"backbone.stem.conv1.norm.\1"),
    (re.compile(r"^backbone\.layer(\d)\.(\d+)\.conv(\d)\.weight$"), "backbone.res{stage}.\\2.conv\\3.weight"),
    (re.compile(r"^backbone\.layer(\d)\.(\d+)\.bn(\d)\.(\w+)$"), "backbone.res{stage}.\\2.conv\\3.norm.\\4"),
    (re.compile(r"^backbone\.layer(\d)\.(\d+)\.downsample\.0\.weight$"), "backbone.res{stage}.\\2.shortcut.weight"),
    (re.compile(r"^backbone\.layer(\d)\.(\d+)\.downsample\.1\.(\w+)$"), "backbone.res{stage}.\\2.shortcut.norm.\\3"),
]


def rename_backbone(key: str) -> str:
    """mmdet/torchvision ResNet key -> edgeseg (detectron2) key; other keys are unchanged."""
    for pattern, template in _BACKBONE_RULES:
        found = pattern.match(key)
        if found:
            stage = int(found.group(1)) + 1 if "layer" in key else 0
            return found.expand(template.replace("{stage}", str(stage)))
    return key


def read_official(path: Path) -> dict:
    state = safe_load(path, "official checkpoint")  # never unpickled freely
    weights = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise fail(path, "not an mmdet checkpoint: expected {'meta', 'state_dict'}")
    out = {rename_backbone(k.removeprefix("module.")): v for k, v in weights.items()
           if not k.endswith("num_batches_tracked")}
    check_finite(out, path)
    return out
