"""Issue 13: where the ResNet-50 bottleneck stride sits, for imported, new and old checkpoints."""

from dataclasses import asdict

import pytest
import torch

from edgeseg.config import BackboneConfig, ModelConfig, Recipe, load_recipe, recipe_to_dict
from edgeseg.engine.checkpoint import load_model, save_checkpoint
from edgeseg.errors import EdgesegError
from edgeseg.models.backbones import upgrade_stride_placement as upgrade_checkpoint_recipe
from edgeseg.models.sparseinst.config import DecoderConfig, EncoderConfig, SparseInstConfig
from edgeseg.models.registry import create_model
from edgeseg.models.sparseinst.convert import OFFICIAL_RECIPES
from edgeseg.workflows import import_official
from tests.models.official_keys import OFFICIAL
from tests.models.reference_resnet import detectron2_resnet50, random_official_state


def _stride_placement(backbone) -> set[str]:
    """Where every strided bottleneck of a backbone puts its stride: {"1x1"}, {"3x3"} or both."""
    where = set()
    for block in backbone.modules():
        if hasattr(block, "conv1") and hasattr(block, "conv3"):
            if block.conv1.stride != (1, 1):
                where.add("1x1")
            if block.conv2.stride != (1, 1):
                where.add("3x3")
    return where


def _write_official(tmp_path, config, seed=0):
    state = random_official_state(OFFICIAL[config](), seed)
    src = tmp_path / f"{config}.pth"
    torch.save({"model": state, "iteration": 269999}, src)
    return src, state


def test_imported_r50_giam_matches_reference_forward(tmp_path):
    """Full model from a detectron2-format R-50 G-IAM file vs the reference backbone + our head."""
    src, state = _write_official(tmp_path, "r50_giam")
    out = tmp_path / "imported.pt"
    import_official(src, "r50_giam", out)
    model, recipe, _ = load_model(out)
    assert recipe.model.backbone.stride_in_1x1 is False
    model = model.double()
    ref_state = {k: v.double() for k, v in state.items()}
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)
        feats = detectron2_resnet50(ref_state, x, stride_in_1x1=False, prefix="backbone.")
        ref = model.decoder(model.encoder(feats))
        wrong = model.decoder(model.encoder(
            detectron2_resnet50(ref_state, x, stride_in_1x1=True, prefix="backbone.")))
    assert set(ours) == set(ref) >= {"pred_logits", "pred_masks", "pred_scores"}
    for key in ours:
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-5)
    assert (ours["pred_masks"] - wrong["pred_masks"]).abs().max() > 1e-2  # the test discriminates


@pytest.mark.parametrize("config", sorted(OFFICIAL_RECIPES))
def test_official_configs_import_with_the_official_layout(config, tmp_path):
    recipe = load_recipe(OFFICIAL_RECIPES[config])
    bb = recipe.model.backbone
    # Base-SparseInst.yaml: FREEZE_AT 0, STRIDE_IN_1X1 False; r50vd: timm resnet50d (stride in 3x3).
    assert (bb.name, bb.freeze_at, bb.stride_in_1x1) == (
        "resnet50vd" if config == "r50vd_giam" else "resnet50", 0, False)
    model = create_model(recipe.model)
    assert _stride_placement(model.backbone) == {"3x3"}
    assert all(p.requires_grad for p in model.backbone.parameters())  # nothing frozen
    src, _ = _write_official(tmp_path, config)
    out = tmp_path / "imported.pt"
    import_official(src, config, out)  # builds the recipe's model and loads strictly, or raises
    meta = torch.load(out, map_location="cpu", weights_only=False)["meta"]
    assert meta["recipe"]["model"]["backbone"]["stride_in_1x1"] is False  # recorded in checkpoints
    assert upgrade_checkpoint_recipe(meta, out) is meta["recipe"]  # and used as written
    assert asdict(recipe.model)["backbone"]["stride_in_1x1"] is False  # bundle.json's model config


def test_derived_recipes_keep_their_backbone():
    for name, freeze_at in (("sparseinst_shapes", 4), ("nuclei", 2)):  # their own freeze_at, not the R-50 recipe's 0
        bb = load_recipe(name).model.backbone
        assert (bb.name, bb.freeze_at, bb.stride_in_1x1) == ("mobilenetv2", freeze_at, False)
        create_model(load_recipe(name).model)


def _small_r50_recipe() -> Recipe:
    # R-50 only up to res4 and a tiny head keep the checkpoint small.
    model = ModelConfig(
        num_classes=2,
        backbone=BackboneConfig(name="resnet50", freeze_at=0),
        method=SparseInstConfig(
            encoder=EncoderConfig(in_features=["res2", "res3", "res4"], num_channels=32),
            decoder=DecoderConfig(num_masks=4, kernel_dim=8, groups=2, inst_dim=16, inst_convs=1,
                                  mask_dim=16, mask_convs=1)))
    return Recipe(model=model)


def _legacy_checkpoint(tmp_path, name="old.pt", **meta_extra):
    """A checkpoint as an edgeseg without ``stride_in_1x1`` wrote it (stride in the 1x1)."""
    recipe = _small_r50_recipe()
    recipe.model.backbone.stride_in_1x1 = True
    torch.manual_seed(0)
    old_model = create_model(recipe.model).eval()
    data = recipe_to_dict(recipe)
    del data["model"]["backbone"]["stride_in_1x1"]
    path = tmp_path / name
    torch.save({"model": old_model.state_dict(),
                "meta": {"edgeseg": "0.1.0", "recipe": data, "class_names": ["a", "b"], **meta_extra}},
               path)
    return path, old_model


def test_old_checkpoint_without_the_key_keeps_its_layout(tmp_path):
    path, old_model = _legacy_checkpoint(tmp_path)
    model, recipe, names = load_model(path)
    assert recipe.model.backbone.stride_in_1x1 is True and names == ["a", "b"]
    assert _stride_placement(model.backbone) == {"1x1"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), old_model(x)
    for key in a:
        torch.testing.assert_close(a[key], b[key])  # predicts as before
    # Saved again, the checkpoint records the layout and loads the same way.
    again = tmp_path / "again.pt"
    save_checkpoint(again, model, recipe, names)
    assert _stride_placement(load_model(again)[0].backbone) == {"1x1"}


def test_old_imported_checkpoint_is_refused(tmp_path):
    path, _ = _legacy_checkpoint(tmp_path, imported_from="sparse_inst_r50_giam_aug_2b7d68.pth")
    with pytest.raises(EdgesegError) as err:
        load_model(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "edgeseg import" in msg and "sparse_inst_r50_giam_aug_2b7d68.pth" in msg


def test_upgrade_leaves_other_recipes_alone():
    def meta(backbone, **extra):
        return {"recipe": {"model": {"backbone": backbone}}, **extra}

    # Backbones whose stride never sat on a 1x1: no key needed, imported ones were right.
    for name in ("resnet50vd", "resnet18", "mobilenetv2"):
        m = meta({"name": name}, imported_from="x.pth")
        assert upgrade_checkpoint_recipe(m, "ck") is m["recipe"]
    # New checkpoints carry the key: used as written, imported or not.
    for value in (False, True):
        m = meta({"name": "resnet50", "stride_in_1x1": value}, imported_from="x.pth")
        assert upgrade_checkpoint_recipe(m, "ck") is m["recipe"]
    # No name: the recipe default (resnet50) was used.
    m = meta({"norm": "FrozenBN"})
    assert upgrade_checkpoint_recipe(m, "ck")["model"]["backbone"] == {"norm": "FrozenBN",
                                                                        "stride_in_1x1": True}
    assert m["recipe"]["model"]["backbone"] == {"norm": "FrozenBN"}  # input left untouched
