"""Backbone registry and weight loading.

A registered builder is called as ``builder(norm=..., out_features=...)`` and returns an
``nn.Module`` with ``out_channels``/``out_strides`` dicts and ``forward(x) -> dict[str, Tensor]``.
It may define ``ignored_weight_prefixes`` (keys of a weight file that the module does not hold,
e.g. a classifier), and ``named_weights`` with ``resolve_weights(name) -> Path`` for built-in
weights such as "imagenet".
"""

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from edgeseg.errors import EdgesegError, fail

BACKBONES: dict[str, Callable[..., nn.Module]] = {}
FEATURE_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a backbone builder under ``name``."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        BACKBONES[name] = builder
        return builder

    return deco


def create_backbone(name: str, norm: str = "FrozenBN", weights: str | None = None,
                    out_features: Iterable[str] = ("res3", "res4", "res5")) -> nn.Module:
    """Build a registered backbone; ``weights`` is a state-dict path or a name the backbone knows."""
    if name not in BACKBONES:
        raise EdgesegError(f"unknown backbone {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    feats = tuple(dict.fromkeys(out_features))
    bad = [f for f in feats if f not in FEATURE_STRIDES]
    if bad or not feats:
        raise EdgesegError(f"invalid out_features {list(feats)!r}; "
                           f"choose from {', '.join(FEATURE_STRIDES)}")
    model = BACKBONES[name](norm=norm, out_features=feats)
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


def _short(keys: list[str], limit: int = 8) -> str:
    head = ", ".join(keys[:limit])
    return head + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model: nn.Module, path: str | Path, ignored_prefixes: Iterable[str] = ()) -> None:
    """Load a state dict strictly, after dropping keys under ``ignored_prefixes``."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, "weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise fail(path, f"cannot read weights ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise fail(path, "not a state dict (expected a mapping of names to tensors)")
    ignored = tuple(ignored_prefixes)
    state = {k: v for k, v in state.items() if not k.startswith(ignored)}

    # num_batches_tracked is optional both ways: BN fills it in, FrozenBN drops it.
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    missing = sorted(own.keys() - given)
    unexpected = sorted(given - own.keys())
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                    for k in own.keys() & given if state[k].shape != own[k].shape)
    problems = [f"{label}: {_short(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected),
                 ("shape mismatch (file vs model)", shapes)) if keys]
    if problems:
        raise fail(path, "weights do not match the backbone; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


# Imported last: the backbone modules register themselves through this package.
from edgeseg.models.backbones import mobilenetv2, resnet, resnet_vd  # noqa: E402,F401
