"""Checkpoints load tensors and plain data only: a pickle that would run code is refused, by
every command that reads one, and nothing in it runs."""

import io

import pytest
import torch

from edgeseg.engine.checkpoint import load_model, read_checkpoint
from edgeseg.errors import EdgesegError
from tests.helpers import tiny_overrides
from tests.test_cli import assert_one_line_error, run_cli


class _WritesAFile:
    """Unpickling this calls ``open(path, 'w')``: the payload a malicious checkpoint would carry."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _malicious(tmp_path, checkpoint):
    marker = tmp_path / "pwned"
    state = torch.load(checkpoint, weights_only=True)
    state["meta"]["payload"] = _WritesAFile(marker)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = tmp_path / "evil.pt"
    path.write_bytes(buffer.getvalue())
    return path, marker


def test_malicious_pickle_runs_nothing_in_any_command(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    evil, marker = _malicious(tmp_path, checkpoint)
    image = sorted((data / "val" / "images").iterdir())[0]
    commands = [
        ("eval", evil, "--data", data / "val"),
        ("predict", evil, image, "--out", tmp_path / "pred"),
        ("export", evil, "--target", "onnx", "--out", tmp_path / "bundle"),
        ("import", evil, "--config", "r50_giam", "--out", tmp_path / "imported.pt"),
        ("bench", evil, "--frames", "1", "--warmup", "0", "--report", tmp_path / "report"),
        ("train", "sparseinst_shapes", "--no-progress",
         *(a for s in tiny_overrides(data, tmp_path / "run") + [f"train.init={evil}"] for a in ("--set", s))),
    ]
    for args in commands:
        result = run_cli(*args)
        assert_one_line_error(result, str(evil), "refusing to load", "io.open")
        assert not marker.exists(), f"{args[0]} ran code from the checkpoint"
    assert not (tmp_path / "bundle").exists() and not (tmp_path / "imported.pt").exists()


def test_training_state_round_trips_with_weights_only(tiny_model):
    checkpoint, _ = tiny_model
    last = checkpoint.with_name("last.pt")
    state = read_checkpoint(last)  # optimizer, scheduler, scaler and RNG states: all plain data
    assert state["train"]["step"] > 0 and isinstance(state["train"]["rng"]["numpy"]["keys"], torch.Tensor)


def test_non_finite_weights_are_refused(tiny_model, tmp_path):
    checkpoint, _ = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    key = next(k for k, v in state["model"].items() if v.is_floating_point() and v.numel() > 1)
    state["model"][key][0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    with pytest.raises(EdgesegError, match=f"weight {key} holds NaN or Inf"):
        load_model(bad)


def test_wrongly_typed_metadata_is_one_line(tiny_model, tmp_path):
    checkpoint, _ = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    state["meta"]["class_names"] = "circle"
    bad = tmp_path / "names.pt"
    torch.save(state, bad)
    with pytest.raises(EdgesegError, match="class_names' must be a list of strings"):
        load_model(bad)
    torch.save({"model": {"w": 3}}, bad)
    with pytest.raises(EdgesegError, match="must map parameter names to tensors"):
        read_checkpoint(bad)


def test_checkpoints_from_before_method_sections_still_load(tiny_model, tmp_path):
    checkpoint, _ = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    model = state["meta"]["recipe"]["model"]
    section = model.pop("sparseinst")
    model.update(section)  # encoder/decoder/loss directly under model, as older versions wrote them
    model["encoder"]["ppm_pool"] = "adaptive"
    old = tmp_path / "old.pt"
    torch.save(state, old)
    loaded, recipe, _ = load_model(old)
    assert recipe.model.method.decoder.num_masks == section["decoder"]["num_masks"]
    reference, _, _ = load_model(checkpoint)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.deploy_outputs(loaded(x)), reference.deploy_outputs(reference(x)))


def test_unknown_method_section_key_lists_the_valid_ones():
    from edgeseg.config import load_recipe

    with pytest.raises(EdgesegError, match=r"unknown key 'model.sparseinst.decoder.heads'; valid keys here: name, "):
        load_recipe("sparseinst_shapes", ["model.sparseinst.decoder.heads=3"])
    with pytest.raises(EdgesegError, match=r"unknown key 'model.decoder'; valid keys here: name, num_classes, "
                                           r"backbone, inference, sparseinst"):
        load_recipe("sparseinst_shapes", ["model.decoder.num_masks=3"])


def test_transfiner_starts_from_an_adamixer_checkpoint(tmp_path):
    """train.init: the detector and mask head load by name (Transfiner keeps AdaMixer's), the
    refinement keeps its initialisation; a checkpoint that shares no weight is refused."""
    from edgeseg.config import load_recipe
    from edgeseg.engine.checkpoint import init_from_checkpoint, save_checkpoint
    from edgeseg.models.registry import create_model
    from tests.models.test_every_method import TINY

    def build(method):
        base, extra = TINY[method]
        recipe = load_recipe(base, extra + ["model.num_classes=4", "model.backbone.weights="])
        return create_model(recipe.model), recipe

    adamixer, recipe = build("adamixer")
    path = tmp_path / "adamixer.pt"
    save_checkpoint(path, adamixer, recipe, ["a", "b", "c", "d"])
    transfiner, _ = build("transfiner")
    loaded, kept, names = init_from_checkpoint(transfiner, path)
    assert set(loaded) == set(adamixer.state_dict()) and names == ["a", "b", "c", "d"]
    assert kept and {k.split(".")[0] for k in kept} == {"incoherence_head", "fine", "refiner"}
    for key in loaded:
        assert torch.equal(transfiner.state_dict()[key], adamixer.state_dict()[key]), key

    other = tmp_path / "other.pt"
    torch.save({"model": {"head.weight": torch.zeros(3, 3)}}, other)
    with pytest.raises(EdgesegError, match=f"{other}: train.init: no weight"):
        init_from_checkpoint(transfiner, other)
