"""devices/: one folder per device family with a profile export uses, a README, scripts, a unit."""

import os

import pytest

from edgeseg.devices import DEVICES_DIR, load_profile, profile_names
from edgeseg.errors import EdgesegError
from edgeseg.export import resolve_target
from tests.helpers import require

FAMILIES = {"jetson": "tensorrt", "raspberrypi": "tflite", "intel": "openvino", "generic": "onnx"}


@pytest.mark.parametrize("name, fmt", FAMILIES.items())
def test_each_family_is_complete(name, fmt):
    folder = DEVICES_DIR / name
    assert (folder / "README.md").is_file() and (folder / "edgeseg-demo.service").is_file()
    assert os.access(folder / "run.sh", os.X_OK)
    target = resolve_target(name)
    assert target.format == fmt == load_profile(name).format


def test_profiles_resolve_to_targets():
    assert set(FAMILIES) <= set(profile_names())
    pi = resolve_target("raspberrypi")
    assert (pi.layout, pi.precision, pi.imgsz, pi.dynamic, pi.runtime) == ("NHWC", "int8", "320", False, {"threads": 4})
    jetson = resolve_target("jetson")
    assert (jetson.opset, jetson.dynamic) == (17, False)
    assert resolve_target("jetson", fmt="onnx").format == "onnx"  # --format overrides


def test_unknown_target_and_bad_profile(tmp_path):
    with pytest.raises(EdgesegError, match="unknown target 'toaster'; valid: onnx, .*raspberrypi"):
        resolve_target("toaster")
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "profile.yaml").write_text("format: onnx\nfps: 30\n")
    with pytest.raises(EdgesegError, match="unknown key 'fps'; valid keys here: name, description"):
        load_profile("board", tmp_path)


def test_profile_defaults_reach_the_bundle(tiny_model, tmp_path):
    require("onnxruntime")
    from edgeseg.export import export_bundle
    from edgeseg.runtime import read_bundle

    checkpoint, _ = tiny_model
    out = tmp_path / "generic"
    export_bundle(checkpoint, "generic", out, imgsz="96", log=lambda *_: None)
    meta = read_bundle(out).meta
    assert meta["target"]["name"] == "generic" and meta["input"]["dynamic"] and meta["input"]["height"] == 96
