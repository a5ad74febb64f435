"""The device runtime: torch-free, validates bundles, refuses wrong inputs with one line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from tests.helpers import REPO, require

require("onnxruntime")

NO_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def bundle(tiny_model, onnx_bundle):
    return onnx_bundle, tiny_model[1]  # the tests copy it before changing anything


def run_without_torch(code: str, *args):
    return subprocess.run([sys.executable, "-c", NO_TORCH + code, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True)


def test_runtime_import_eval_and_predict_without_torch(bundle, tmp_path):
    out, data = bundle
    code = """
import edgeseg.runtime, sys
from edgeseg.runtime import Predictor
from edgeseg.data.coco import CocoDataset
ds = CocoDataset(sys.argv[2])
dets = Predictor(sys.argv[1])(ds.load_image(0))
assert "torch" not in sys.modules
sys.argv = ["edgeseg", "eval", sys.argv[1], "--data", sys.argv[2], "--out", sys.argv[3]]
from edgeseg.cli import main
main()
"""
    result = run_without_torch(code, out, data / "val", tmp_path / "res.json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Average Precision" in result.stdout
    assert isinstance(json.loads((tmp_path / "res.json").read_text()), list)
    image = sorted((data / "val" / "images").iterdir())[0]
    code = """
import sys
sys.argv = ["edgeseg", "predict", sys.argv[1], sys.argv[2], "--out", sys.argv[3]]
from edgeseg.cli import main
main()
"""
    result = run_without_torch(code, out, image, tmp_path / "pred")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "pred" / "results.json").is_file()


def test_wrong_channels_and_wrong_size(bundle):
    from edgeseg.runtime import Predictor

    out, _ = bundle
    p = Predictor(out)
    with pytest.raises(EdgesegError, match="HxWx3"):
        p(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(EdgesegError, match="multiple of 32"):
        p.raw(np.zeros((1, 3, 100, 128), np.float32))
    with pytest.raises(EdgesegError, match="threads"):
        Predictor(out, threads=0)


def test_damaged_bundles_are_refused(bundle, tmp_path):
    from edgeseg.runtime import read_bundle

    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    model = read_bundle(copy).artifact()
    raw = model.read_bytes()
    model.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(EdgesegError, match="truncated"):
        read_bundle(copy)
    model.unlink()
    with pytest.raises(EdgesegError, match="missing"):
        read_bundle(copy)
    model.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(EdgesegError, match="SHA-256"):
        read_bundle(copy)
    model.write_bytes(raw)
    meta = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text("{")
    with pytest.raises(EdgesegError, match="not valid JSON"):
        read_bundle(copy)
    del meta["input"]
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(EdgesegError, match="lacks input"):
        read_bundle(copy)
    (copy / "bundle.json").unlink()
    with pytest.raises(EdgesegError, match="metadata missing"):
        read_bundle(copy)


def test_class_list_that_does_not_match_the_model_names_bundle_json(bundle, tmp_path):
    from edgeseg.runtime import Predictor

    out, data = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta["class_names"] = meta["class_names"][:1]
    (copy / "bundle.json").write_text(json.dumps(meta))
    image = np.zeros((128, 128, 3), np.uint8)
    with pytest.raises(EdgesegError, match=r"b/bundle.json: lists 1 class names but the model scores 4 classes"):
        Predictor(copy)(image)


def test_static_tflite_model_must_take_the_bundle_json_size(monkeypatch):
    from types import SimpleNamespace

    from edgeseg.runtime.backends import litert_backend
    from edgeseg.runtime.bundle import Bundle

    class Interpreter:  # a 128x128 NHWC model, as LiteRT describes it
        def __init__(self, path, num_threads=None):
            pass

        def allocate_tensors(self):
            pass

        def get_input_details(self):
            return [{"index": 0, "shape": np.array([1, 128, 128, 3])}]

    monkeypatch.setattr(litert_backend, "require", lambda *_: SimpleNamespace(Interpreter=Interpreter))
    meta = {"input": {"height": 160, "width": 128, "layout": "NHWC"}, "artifacts": {"model": {"file": "model.tflite"}}}
    with pytest.raises(EdgesegError, match=r"x/bundle.json: says the input is 160x128, but model.tflite takes \[1, "):
        litert_backend.Session(Bundle(REPO / "x", meta))


def test_missing_tensorrt_says_how_to_get_it():
    from edgeseg.runtime.backends import require
    from edgeseg.runtime.backends.tensorrt_backend import INSTALL

    with pytest.raises(EdgesegError) as e:
        require("edgeseg_no_such_module", INSTALL, "TensorRT")
    message = str(e.value)
    assert "JetPack" in message and "pip install tensorrt" in message and "pip install TensorRT" not in message
