"""edgeseg checkpoints: detectron2-compatible ``{"model": state_dict}`` plus our metadata.

``meta`` holds the recipe, class names and version so a checkpoint is self-describing; training
state (optimizer, scheduler, step, RNG) lives under ``train`` in ``last.pt`` only.
"""

from __future__ import annotations

import io

import torch

from edgeseg import __version__
from edgeseg.config import Recipe, recipe_from_dict, recipe_to_dict
from edgeseg.errors import EdgesegError, fail
from edgeseg.io import write_bytes
from edgeseg.models.registry import create_model, output_kind_of
from edgeseg.models.weights import check_finite, load_state_strict, safe_load


def save_checkpoint(path, model, recipe: Recipe, class_names, train_state: dict | None = None, extra=None):
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": {"edgeseg": __version__, "recipe": recipe_to_dict(recipe), "class_names": list(class_names),
                 "output_kind": output_kind_of(recipe.model), **(extra or {})},
    }
    if train_state is not None:
        state["train"] = train_state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def read_checkpoint(path) -> dict:
    """The checkpoint's dict, loaded with tensors and plain data only (nothing in it can run)."""
    state = safe_load(path, "checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise fail(path, "not a checkpoint: expected a dict with a 'model' state dict")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items()):
        raise fail(path, "not a checkpoint: 'model' must map parameter names to tensors")
    meta = state.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise fail(path, "checkpoint 'meta' must be a dict")
    check_finite(state["model"], path)
    return state


def load_model(path, recipe: Recipe | None = None):
    """Build the model described by an edgeseg checkpoint and load its weights.

    Returns (model in eval mode, recipe, class_names).
    """
    state = read_checkpoint(path)
    meta = state.get("meta")
    if recipe is None:
        if not meta or "recipe" not in meta:
            raise fail(path, "checkpoint has no edgeseg metadata; convert official weights with `edgeseg import`")
        from edgeseg.models.upgrade import upgrade_checkpoint_recipe  # fills keys older files lack

        recipe = recipe_from_dict(upgrade_checkpoint_recipe(meta, path), source=path)
    recipe.model.backbone.weights = ""  # the checkpoint carries every weight
    model = create_model(recipe.model)
    load_state_strict(model, state["model"], path)
    class_names = (meta or {}).get("class_names") or [f"class{i}" for i in range(recipe.model.num_classes)]
    if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
        raise fail(path, "checkpoint 'class_names' must be a list of strings")
    if len(class_names) != recipe.model.num_classes:
        raise EdgesegError(f"{path}: {len(class_names)} class names for {recipe.model.num_classes} classes")
    return model.eval(), recipe, list(class_names)


def init_from_checkpoint(model, path) -> tuple[list[str], list[str], list[str] | None]:
    """Start ``model`` from an edgeseg checkpoint's weights (fine-tuning, or a method that extends
    another's: an AdaMixer checkpoint into Mask Transfiner, whose detector and mask head keep
    AdaMixer's names). Every entry of the same name and shape loads; the rest keep their
    initialisation (a class layer for another number of classes among them). Returns the loaded
    and the kept names and the checkpoint's class names; refuses one that shares no weight."""
    state = read_checkpoint(path)
    own = model.state_dict()
    loaded = {k: v for k, v in state["model"].items() if k in own and own[k].shape == v.shape}
    if not loaded:
        raise fail(path, "train.init: no weight of this checkpoint matches the model by name and shape")
    model.load_state_dict(loaded, strict=False)
    return sorted(loaded), sorted(k for k in own if k not in loaded), (state.get("meta") or {}).get("class_names")
