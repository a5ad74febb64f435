import pytest

from edgeseg.config import RECIPES_DIR, load_recipe, recipe_from_dict, recipe_to_dict
from edgeseg.errors import EdgesegError


def test_sparseinst_shapes_inherits_official_recipe():
    r = load_recipe("sparseinst_shapes")
    assert r.model.backbone.name == "mobilenetv2"
    assert r.model.method.loss.class_weight == 2.0  # from the base recipe
    assert r.model.method.decoder.name == "GroupIAMDecoder"
    official = load_recipe("sparseinst_r50_giam_coco")
    assert (official.solver.base_lr, official.solver.max_iter, official.solver.steps) == (5e-5, 270000, [210000, 250000])
    assert official.solver.weight_decay == 0.05 and official.solver.ims_per_batch == 64


@pytest.mark.parametrize("recipe", sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
def test_every_shipped_recipe_loads_typed(recipe):
    r = load_recipe(recipe)
    assert r.model.num_classes > 0 and r.solver.max_iter > 0 and r.data.min_size_test > 0


def test_overrides_parse_yaml_values():
    r = load_recipe("sparseinst_shapes", ["solver.base_lr=2e-4", "data.min_size_train=[128, 160]", "solver.amp=off"])
    assert r.solver.base_lr == 2e-4 and r.data.min_size_train == [128, 160] and r.solver.amp == "off"


def test_unknown_key_lists_valid_keys():
    with pytest.raises(EdgesegError) as e:
        load_recipe("sparseinst_shapes", ["solver.learning_rate=1"])
    msg = str(e.value)
    assert "solver.learning_rate" in msg and "base_lr" in msg and "\n" not in msg


def test_bad_type_and_bad_yaml(tmp_path):
    with pytest.raises(EdgesegError, match="max_iter"):
        load_recipe("sparseinst_shapes", ["solver.max_iter=lots"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(EdgesegError, match="bad.yaml: not valid YAML"):
        load_recipe(bad)
    with pytest.raises(EdgesegError, match="recipe not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_only_one_level_of_inheritance(tmp_path):
    (tmp_path / "a.yaml").write_text("solver: {base_lr: 1.0}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\n")
    assert load_recipe(tmp_path / "b.yaml").solver.base_lr == 1.0
    with pytest.raises(EdgesegError, match="only one level"):
        load_recipe(tmp_path / "c.yaml")


def test_dict_round_trip():
    r = load_recipe("sparseinst_shapes")
    assert recipe_from_dict(recipe_to_dict(r)) == r


@pytest.mark.parametrize("override, key", [
    ("solver.ims_per_batch=0", "solver.ims_per_batch"),
    ("data.min_size_train=[]", "data.min_size_train"),
    ("data.min_size_train=[0, 128]", "data.min_size_train"),
    ("solver.max_iter=-5", "solver.max_iter"),
    ("solver.base_lr=.nan", "solver.base_lr"),
    ("data.crop_size=[600, 384]", "data.crop_size"),
    ("train.checkpoint_period=0", "train.checkpoint_period"),
    ("data.num_workers=-1", "data.num_workers"),
])
def test_nonsense_values_are_refused_naming_the_key(override, key):
    with pytest.raises(EdgesegError) as e:
        load_recipe("sparseinst_shapes", [override])
    msg = str(e.value)
    assert f"'{key}' must be" in msg and "sparseinst_shapes.yaml (with --set)" in msg and "\n" not in msg


def test_checkpoint_recipes_are_validated_too():
    data = recipe_to_dict(load_recipe("sparseinst_shapes"))
    data["solver"]["ims_per_batch"] = 0
    with pytest.raises(EdgesegError, match=r"ckpt.pt: 'solver.ims_per_batch' must be at least 1, got 0"):
        recipe_from_dict(data, "ckpt.pt")
