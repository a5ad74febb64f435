"""edgeseg checkpoints: detectron2-compatible ``{"model": state_dict}`` plus our metadata.

``meta`` holds the recipe, class names and version so a checkpoint is self-describing; training
state (optimizer, scheduler, step, RNG) lives under ``train`` in ``last.pt`` only.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from edgeseg import __version__
from edgeseg.config import Recipe, recipe_from_dict, recipe_to_dict
from edgeseg.errors import EdgesegError, fail
from edgeseg.io import write_bytes
from edgeseg.models.registry import create_model


def save_checkpoint(path, model, recipe: Recipe, class_names, train_state: dict | None = None, extra=None):
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": {"edgeseg": __version__, "recipe": recipe_to_dict(recipe), "class_names": list(class_names),
                 **(extra or {})},
    }
    if train_state is not None:
        state["train"] = train_state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise fail(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for truncated/corrupt files
        raise fail(path, f"cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise fail(path, "not a checkpoint: expected a dict with a 'model' state dict")
    return state


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _summarise(keys, limit=6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_strict(model, state_dict: dict, source) -> None:
    """Load exactly: unknown, missing or mis-shaped keys are listed in a one-line error."""
    own = model.state_dict()
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    shapes = [k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    if shapes:
        detail = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(shapes)[:4]]
        problems.append(f"shape mismatch: {'; '.join(detail)}")
    if problems:
        raise fail(source, "checkpoint does not fit this model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def load_model(path, recipe: Recipe | None = None):
    """Build the model described by an edgeseg checkpoint and load its weights.

    Returns (model in eval mode, recipe, class_names).
    """
    state = read_checkpoint(path)
    meta = state.get("meta")
    if recipe is None:
        if not meta or "recipe" not in meta:
            raise fail(path, "checkpoint has no edgeseg metadata; convert official weights with `edgeseg import`")
        recipe = recipe_from_dict(meta["recipe"], source=path)
    recipe.model.backbone.weights = ""  # the checkpoint carries every weight
    model = create_model(recipe.model)
    load_state_strict(model, state["model"], path)
    class_names = (meta or {}).get("class_names") or [f"class{i}" for i in range(recipe.model.num_classes)]
    if len(class_names) != recipe.model.num_classes:
        raise EdgesegError(f"{path}: {len(class_names)} class names for {recipe.model.num_classes} classes")
    return model.eval(), recipe, list(class_names)
