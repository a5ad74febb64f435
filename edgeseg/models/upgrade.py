"""Recipes stored in checkpoints by older edgeseg versions, brought to today's schema."""

from __future__ import annotations

from edgeseg.models.backbones import upgrade_stride_placement


# Method settings that sat directly under ``model`` before each method owned a section.
MOVED_INTO_METHOD_SECTION = ("encoder", "decoder", "loss")


def upgrade_checkpoint_recipe(meta: dict, source) -> dict:
    """The recipe dict of checkpoint ``meta`` in today's schema, behaving as it did when saved."""
    recipe = upgrade_stride_placement(meta, source)
    model = recipe.get("model") if isinstance(recipe, dict) else None
    if not isinstance(model, dict) or not any(k in model for k in MOVED_INTO_METHOD_SECTION):
        return recipe
    name = model.get("name", "sparseinst")
    section = {k: v for k, v in model.items() if k in MOVED_INTO_METHOD_SECTION}
    if isinstance(section.get("encoder"), dict):  # the export form now switches itself
        section["encoder"] = {k: v for k, v in section["encoder"].items() if k != "ppm_pool"}
    shared = {k: v for k, v in model.items() if k not in MOVED_INTO_METHOD_SECTION}
    return {**recipe, "model": {**shared, name: section}}
