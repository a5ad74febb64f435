"""Model registry: ``create_model(cfg)`` builds any registered method from its typed config."""

from __future__ import annotations

from typing import Callable

from torch import nn

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError

MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {}


def register_model(name: str):
    def wrap(builder):
        MODELS[name] = builder
        return builder

    return wrap


def create_model(cfg: ModelConfig) -> nn.Module:
    _register_builtin()
    if cfg.name not in MODELS:
        raise EdgesegError(f"unknown model '{cfg.name}'; available: {', '.join(sorted(MODELS))}")
    return MODELS[cfg.name](cfg)


def _register_builtin() -> None:
    if "sparseinst" not in MODELS:
        from edgeseg.models.sparseinst import SparseInst

        register_model("sparseinst")(SparseInst)


class DeployModel(nn.Module):
    """The exported graph: normalised images -> (class scores [B,N,C], mask logits [B,N,H/4,W/4])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        for module in model.modules():  # layers with an export-only numerically safer form
            if hasattr(module, "for_export"):
                module.for_export = True

    def forward(self, images):
        return self.model.scores_and_masks(self.model(images))
