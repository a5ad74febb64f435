"""Backbone registry and weight loading.

A registered builder is called as ``builder(norm=..., out_features=...)`` (plus
``stride_in_1x1=True`` when asked for and its signature takes it) and returns an
``nn.Module`` with ``out_channels``/``out_strides`` dicts and ``forward(x) -> dict[str, Tensor]``.
It may define ``ignored_weight_prefixes`` (keys of a weight file that the module does not hold,
e.g. a classifier), and ``named_weights`` with ``resolve_weights(name) -> Path`` for built-in
weights such as "imagenet".
"""

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from edgeseg.errors import EdgesegError, fail
from edgeseg.models.weights import load_state_strict, safe_load

BACKBONES: dict[str, Callable[..., nn.Module]] = {}
FEATURE_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
# Backbones that always put a bottleneck's stride on the first 1x1 conv before the
# ``stride_in_1x1`` option existed: a checkpoint recipe without the key had that layout.
LEGACY_STRIDE_IN_1X1 = frozenset({"resnet50"})


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a backbone builder under ``name``."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        BACKBONES[name] = builder
        return builder

    return deco


def create_backbone(name: str, norm: str = "FrozenBN", weights: str | None = None,
                    out_features: Iterable[str] = ("res3", "res4", "res5"),
                    stride_in_1x1: bool = False) -> nn.Module:
    """Build a registered backbone; ``weights`` is a state-dict path or a name the backbone knows.

    ``stride_in_1x1`` puts a bottleneck's stride on its first 1x1 conv instead of the 3x3
    (detectron2's STRIDE_IN_1X1); only backbones whose builder takes it accept True.
    """
    if name not in BACKBONES:
        raise EdgesegError(f"unknown backbone {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    feats = tuple(dict.fromkeys(out_features))
    bad = [f for f in feats if f not in FEATURE_STRIDES]
    if bad or not feats:
        raise EdgesegError(f"invalid out_features {list(feats)!r}; "
                           f"choose from {', '.join(FEATURE_STRIDES)}")
    options = {"stride_in_1x1": True} if stride_in_1x1 else {}
    if options and "stride_in_1x1" not in inspect.signature(BACKBONES[name]).parameters:
        raise EdgesegError(f"backbone {name!r} has a fixed stride placement: stride_in_1x1 must be "
                           f"false (true is for {', '.join(_takes_stride_in_1x1())})")
    model = BACKBONES[name](norm=norm, out_features=feats, **options)
    if weights:
        named: tuple[str, ...] = getattr(model, "named_weights", ())
        if weights in named:
            path = model.resolve_weights(weights)
        else:
            path = Path(weights)
            if not path.is_file():
                hint = f"built-in: {', '.join(named)}" if named else f"{name} has no built-in weights"
                raise fail(weights, f"weights file not found ({hint})")
        load_weights(model, path, getattr(model, "ignored_weight_prefixes", ()))
    return model


def load_weights(model: nn.Module, path: str | Path, ignored_prefixes: Iterable[str] = ()) -> None:
    """Load a weight file strictly, after dropping keys under ``ignored_prefixes``."""
    state = safe_load(path, "weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise fail(path, "not a state dict (expected a mapping of names to tensors)")
    ignored = tuple(ignored_prefixes)
    load_state_strict(model, {k: v for k, v in state.items() if not k.startswith(ignored)}, path, "weights file")


def _takes_stride_in_1x1() -> list[str]:
    return sorted(n for n, b in BACKBONES.items() if "stride_in_1x1" in inspect.signature(b).parameters)


def upgrade_stride_placement(meta: dict, source: object) -> dict:
    """The recipe dict of checkpoint ``meta``, with ``model.backbone.stride_in_1x1`` filled in.

    Checkpoints written before the key existed computed a ``resnet50`` with the stride in the
    1x1 conv: trained ones keep that layout so they predict as before. Ones made by
    ``edgeseg import`` (official weights, which need the stride in the 3x3) computed wrong
    features and are refused.
    """
    recipe = meta["recipe"]
    model = recipe.get("model") if isinstance(recipe, dict) else None
    backbone = model.get("backbone") if isinstance(model, dict) else None
    if not isinstance(backbone, dict) or "stride_in_1x1" in backbone:
        return recipe
    if backbone.get("name", "resnet50") not in LEGACY_STRIDE_IN_1X1:
        return recipe
    if meta.get("imported_from"):
        raise fail(source, f"imported from {meta['imported_from']} by an older edgeseg that put the "
                           "ResNet-50 stride on the wrong conv; re-run `edgeseg import` on the "
                           "official weights")
    backbone = {**backbone, "stride_in_1x1": True}
    return {**recipe, "model": {**model, "backbone": backbone}}


def freeze_stages(backbone: nn.Module, freeze_at: int) -> None:
    """Fix the stem (freeze_at >= 1) and stages res2..res{freeze_at} (detectron2 semantics)."""
    if freeze_at <= 0:
        return
    groups = getattr(backbone, "stage_modules", None)
    if groups is None:
        return
    for stage in groups()[:freeze_at]:
        for p in stage.parameters():
            p.requires_grad_(False)


# Imported last: the backbone modules register themselves through this package.
from edgeseg.models.backbones import mobilenetv2, resnet, resnet_vd  # noqa: E402,F401
