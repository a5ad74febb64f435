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
from typing import Any, Callable

from edgeseg.errors import EdgesegError

# The method folders under edgeseg/models/.
METHOD_PACKAGES = ("sparseinst", "adamixer", "transfiner", "solov2")
SUPERVISION_KINDS = ("masks", "boxes", "points", "none")


@dataclass(frozen=True)
class Int8Policy:
    """Which layers stay float in an INT8 export (see edgeseg/export/policy.py for how it applies)."""

    float_leading_layers: int = 2  # the first weighted layers see raw pixel statistics
    float_ops: str = ""  # what else stays float, in words, recorded in bundle.json
    # True: only convolutions run in INT8; Linear layers (weighted MatMul/Gemm) and elementwise
    # arithmetic (adds, subtractions, min/max, powers, normalisations) stay float on every format
    # (TFLite keeps FULLY_CONNECTED float for every method; see edgeseg/export/tflite.py).
    convolutions_only: bool = False


@dataclass(frozen=True)
class Method:
    name: str
    config: type  # dataclass of the recipe section ``model.<name>`` (ModelConfig.method)
    model: str  # "module:Class"; the class takes the ModelConfig
    # A key of edgeseg.postprocess.OUTPUT_KINDS, or a function of the method's config section
    # that picks one (a model whose optional head adds an output, e.g. AdaMixer's mask head).
    output_kind: str | Callable[[Any], str]
    # Annotation kinds it can train with (from SUPERVISION_KINDS), or a function of its config.
    supervision: tuple[str, ...] | Callable[[Any], tuple[str, ...]]
    int8: Int8Policy = field(default_factory=Int8Policy)
    # "module" whose OFFICIAL_RECIPES (``edgeseg import --config`` name -> recipe), CLASS_NAMES and
    # read_official(path) -> state dict in our names import official checkpoints; "" for none.
    importer: str = ""

    def kind_for(self, section) -> str:
        """The output kind of a model built from config section ``section`` (ModelConfig.method)."""
        return self.output_kind(section) if callable(self.output_kind) else self.output_kind

    def supervision_for(self, section) -> tuple[str, ...]:
        return self.supervision(section) if callable(self.supervision) else self.supervision


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in METHODS and METHODS[method.name] != method:
        raise ValueError(f"method {method.name!r} registered twice")
    unknown = set() if callable(method.supervision) else set(method.supervision) - set(SUPERVISION_KINDS)
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


def official_configs() -> dict[str, str]:
    """Every ``edgeseg import --config`` name -> the method that imports it."""
    _discover()
    out = {}
    for method in METHODS.values():
        if method.importer:
            out.update(dict.fromkeys(importlib.import_module(method.importer).OFFICIAL_RECIPES, method.name))
    return out


def official_importer(config: str):
    """The importer module (see ``Method.importer``) of the method owning ``edgeseg import --config``."""
    configs = official_configs()
    if config not in configs:
        raise EdgesegError(f"--config {config}: unknown; valid: {', '.join(configs)}")
    return importlib.import_module(METHODS[configs[config]].importer)


def output_kind_of(cfg) -> str:
    """The output kind of the model a ModelConfig builds."""
    return get_method(cfg.name).kind_for(cfg.method)


def supervision_of(cfg) -> tuple[str, ...]:
    """The annotation kinds the model a ModelConfig builds can train with."""
    return get_method(cfg.name).supervision_for(cfg.method)


def create_model(cfg):
    """Build the registered method ``cfg.name`` from its ModelConfig (imports torch)."""
    module, _, cls = get_method(cfg.name).model.partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)
