"""Official key names/shapes load strictly; `edgeseg import` converts detectron2 files."""

import pytest
import torch

from edgeseg.config import load_recipe
from edgeseg.engine.checkpoint import load_model
from edgeseg.models.weights import load_state_strict
from edgeseg.errors import EdgesegError
from edgeseg.models.registry import create_model
from edgeseg.models.sparseinst.convert import OFFICIAL_RECIPES
from edgeseg.workflows import import_official
from tests.models.official_keys import OFFICIAL


def _official_state(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=g) for k, shape in OFFICIAL[config]().items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = state[k].abs() + 0.5
    return state


@pytest.mark.parametrize("config", sorted(OFFICIAL_RECIPES))
def test_official_layout_loads_strictly(config):
    model = create_model(load_recipe(OFFICIAL_RECIPES[config]).model)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = OFFICIAL[config]()
    assert sorted(set(ours) ^ set(expected)) == []
    assert ours == expected
    state = _official_state(config)
    load_state_strict(model, state, "official")
    assert torch.equal(model.state_dict()["decoder.mask_branch.projection.weight"],
                       state["decoder.mask_branch.projection.weight"])


@pytest.mark.parametrize("config", ["r50_giam"])  # file round trip is I/O heavy: one config
def test_import_detectron2_file_round_trip(config, tmp_path):
    state = _official_state(config)
    src = tmp_path / "official.pth"
    # detectron2 format, with extras an official file may carry
    torch.save({"model": {**state, "backbone.res2.0.conv1.norm.num_batches_tracked": torch.tensor(0)},
                "iteration": 269999}, src)
    out = tmp_path / "edgeseg.pt"
    import_official(src, config, out)
    model, recipe, names = load_model(out)
    assert len(names) == 80 and names[0] == "person"
    loaded = model.state_dict()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    # Round trip: our checkpoint is itself a detectron2-format file that imports again.
    again = tmp_path / "again.pt"
    import_official(out, config, again)
    reloaded = load_model(again)[0].state_dict()
    assert all(torch.equal(reloaded[k], v) for k, v in state.items())


def test_import_lists_missing_and_unknown_keys(tmp_path):
    state = _official_state("r50_iam")
    state.pop("decoder.inst_branch.cls_score.weight")
    state["decoder.extra.weight"] = torch.zeros(1)
    src = tmp_path / "bad.pth"
    torch.save({"model": state}, src)
    with pytest.raises(EdgesegError) as e:
        import_official(src, "r50_iam", tmp_path / "out.pt")
    msg = str(e.value)
    assert "bad.pth" in msg and "decoder.inst_branch.cls_score.weight" in msg and "decoder.extra.weight" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out.pt").exists()


def test_import_wrong_config_reports_shape_mismatch(tmp_path):
    src = tmp_path / "giam.pth"
    torch.save({"model": _official_state("r50_giam")}, src)
    with pytest.raises(EdgesegError, match="iam_conv.weight"):
        import_official(src, "r50_iam", tmp_path / "out.pt")
