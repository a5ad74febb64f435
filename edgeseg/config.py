"""Typed configs loaded from YAML recipes.

A recipe is a YAML file whose keys mirror :class:`Recipe`. It may name one ``base`` recipe
(relative to itself); the base itself may not have a base (one level of inheritance keeps a
recipe readable on its own). ``--set section.key=value`` overrides are parsed as YAML values.
Unknown keys are an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgeseg.errors import EdgesegError, fail

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


@dataclass
class BackboneConfig:
    name: str = "resnet50"
    norm: str = "FrozenBN"
    # "imagenet" (only where a weight file ships in a package), a path, or "" for random init.
    weights: str = ""
    # Stages below this index keep their weights fixed (detectron2's FREEZE_AT; 0 = train all).
    freeze_at: int = 2


@dataclass
class EncoderConfig:
    in_features: list[str] = field(default_factory=lambda: ["res3", "res4", "res5"])
    num_channels: int = 256
    # "adaptive" is nn.AdaptiveAvgPool2d; "export" is the same average written with fixed
    # kernels so ONNX/TFLite converters see plain AvgPool (requires sizes that divide evenly).
    ppm_pool: str = "adaptive"
    separable: bool = False


@dataclass
class DecoderConfig:
    name: str = "GroupIAMDecoder"  # BaseIAMDecoder | GroupIAMDecoder | GroupIAMSoftDecoder
    num_masks: int = 100
    kernel_dim: int = 128
    scale_factor: float = 2.0
    groups: int = 4
    inst_dim: int = 256
    inst_convs: int = 4
    mask_dim: int = 256
    mask_convs: int = 4
    # Depthwise-separable 3x3 convs in both branches (the edge variant; not in official weights).
    separable: bool = False


@dataclass
class LossConfig:
    class_weight: float = 2.0
    mask_pixel_weight: float = 5.0
    mask_dice_weight: float = 2.0
    objectness_weight: float = 1.0
    matcher_alpha: float = 0.8
    matcher_beta: float = 0.2


@dataclass
class InferenceConfig:
    cls_threshold: float = 0.005
    mask_threshold: float = 0.45
    max_detections: int = 100


@dataclass
class ModelConfig:
    name: str = "sparseinst"
    num_classes: int = 80
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


@dataclass
class DataConfig:
    train: str = ""
    val: str = ""
    # Built before training when the folder is missing: "shapes", "nuclei", "voc" or "".
    generate: str = ""
    min_size_train: list[int] = field(default_factory=lambda: [416, 448, 480, 512, 544, 576, 608, 640])
    max_size_train: int = 853
    min_size_test: int = 640
    max_size_test: int = 853
    flip: bool = True
    crop: bool = True
    crop_size: list[int] = field(default_factory=lambda: [384, 600])
    num_workers: int = 2
    # Decode every training image once and keep it in memory (small datasets, slow disks).
    cache_images: bool = False


@dataclass
class SolverConfig:
    optimizer: str = "adamw"
    base_lr: float = 5e-5
    weight_decay: float = 0.05
    backbone_multiplier: float = 1.0
    amsgrad: bool = False
    ims_per_batch: int = 64
    max_iter: int = 270000
    steps: list[int] = field(default_factory=lambda: [210000, 250000])
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    clip_grad_norm: float = 0.0  # 0 disables
    # "auto": bf16 autocast on CPUs with AMX/AVX512-BF16, fp16 on CUDA; or "bf16", "fp16", "off".
    amp: str = "auto"
    channels_last: bool = True
    # Wall-clock cap on training in minutes (0 = none); training stops early and still saves.
    max_minutes: float = 0.0


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    seed: int = 0
    eval_period: int = 5000
    checkpoint_period: int = 5000
    log_period: int = 20
    # torch.set_num_threads (0 = leave torch's default).
    threads: int = 0


@dataclass
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _valid_keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def build_typed(cls, values: dict, source, where: str = ""):
    """Build dataclass ``cls`` from a mapping, coercing types; unknown keys list the valid ones."""
    if not isinstance(values, dict):
        raise fail(source, f"'{where or 'top level'}' must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            name = f"{where}.{key}" if where else key
            raise fail(source, f"unknown key '{name}'; valid keys here: {', '.join(_valid_keys(cls))}")
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key, source)
    return cls(**kwargs)


def _coerce(hint, value, where: str, source):
    if dataclasses.is_dataclass(hint):
        return build_typed(hint, value or {}, source, where)
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            value = [value]
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, where, source) for v in value]
    if hint is str and value is None:
        return ""
    if hint is str and isinstance(value, bool):
        return "on" if value else "off"  # YAML 1.1 reads a bare off/on/yes/no as a bool
    try:
        if hint is bool:
            if not isinstance(value, bool):
                raise ValueError
            return value
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return hint(value)
    except (TypeError, ValueError):
        raise fail(source, f"'{where}' expects {hint.__name__}, got {value!r}") from None


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise fail(path, "file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise fail(path, f"not valid YAML{at}") from None
    if not isinstance(data, dict):
        raise fail(path, "must be a YAML mapping")
    return data


def resolve_recipe_path(name: str | Path) -> Path:
    """A recipe is a path, or the name of a file in the bundled ``recipes/`` folder."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (RECIPES_DIR / path, RECIPES_DIR / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    raise fail(name, "recipe not found (neither a file nor a name in recipes/)")


def parse_overrides(pairs: list[str]) -> dict:
    """Turn ``["solver.base_lr=1e-4", ...]`` into a nested dict."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise EdgesegError(f"--set {pair}: expected key=value")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def load_recipe(name: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = resolve_recipe_path(name)
    data = read_yaml(path)
    base = data.pop("base", None)
    if base:
        base_path = (path.parent / base).resolve()
        base_data = read_yaml(base_path)
        if "base" in base_data:
            raise fail(path, f"base recipe {base} has a base of its own; only one level is allowed")
        data = _deep_merge(base_data, data)
    if overrides:
        data = _deep_merge(data, parse_overrides(overrides))
        path = f"{path} (with --set)"
    return build_typed(Recipe, data, path)


def recipe_to_dict(recipe) -> dict:
    return dataclasses.asdict(recipe)


def recipe_from_dict(data: dict, source="checkpoint") -> Recipe:
    return build_typed(Recipe, data, source)


def model_config_from_dict(data: dict, source="checkpoint") -> ModelConfig:
    return build_typed(ModelConfig, data, source, "model")
