"""The method table: what the rest of edgeseg knows about a method, torch-free.

A method is a folder ``edgeseg/models/<name>/`` plus an entry in ``METHOD_PACKAGES``. The
folder's ``__init__.py`` registers a :class:`Method` (no torch import there): its recipe
section's dataclass, the model class to build (imported on use), its output kind (the postprocess and metric every tool uses), the
supervision it trains with, and its INT8 policy. Nothing outside the folder branches on a
method's name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from edgeseg.errors import EdgesegError

# The method folders under edgeseg/models/.
METHOD_PACKAGES = ("sparseinst",)
SUPERVISION_KINDS = ("masks", "boxes", "points", "none")


@dataclass(frozen=True)
class Int8Policy:
    """Which layers stay float in an INT8 export (see edgeseg/export/policy.py for how it applies)."""

    float_leading_layers: int = 2  # the first weighted layers see raw pixel statistics
    float_ops: str = ""  # what else stays float, in words, recorded in bundle.json


@dataclass(frozen=True)
class Method:
    name: str
    config: type  # dataclass of the recipe section ``model.<name>`` (ModelConfig.method)
    model: str  # "module:Class"; the class takes the ModelConfig
    output_kind: str  # a key of edgeseg.postprocess.OUTPUT_KINDS
    supervision: tuple[str, ...]  # annotation kinds it can train with, from SUPERVISION_KINDS
    int8: Int8Policy = field(default_factory=Int8Policy)


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in METHODS and METHODS[method.name] != method:
        raise ValueError(f"method {method.name!r} registered twice")
    unknown = set(method.supervision) - set(SUPERVISION_KINDS)
    if unknown:
        raise ValueError(f"method {method.name!r}: unknown supervision {sorted(unknown)}")
    METHODS[method.name] = method
    return method


def _discover() -> None:
    for package in METHOD_PACKAGES:
        importlib.import_module(f"edgeseg.models.{package}")


def get_method(name: str) -> Method:
    _discover()
    if name not in METHODS:
        raise EdgesegError(f"unknown model '{name}'; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_names() -> list[str]:
    _discover()
    return sorted(METHODS)


def create_model(cfg):
    """Build the registered method ``cfg.name`` from its ModelConfig (imports torch)."""
    module, _, cls = get_method(cfg.name).model.partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)
