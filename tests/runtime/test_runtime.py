"""The device runtime: torch-free, validates bundles, refuses wrong inputs with one line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from tests.helpers import REPO

pytest.importorskip("onnxruntime")

NO_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def bundle(tiny_model, tmp_path_factory):
    from edgeseg.export import export_bundle

    checkpoint, data = tiny_model
    out = tmp_path_factory.mktemp("rt") / "onnx"
    export_bundle(checkpoint, "onnx", out, imgsz="128", log=lambda *_: None)
    return out, data


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
