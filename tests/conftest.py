import pytest

from tests.helpers import tiny_recipe, tiny_shapes


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny trained checkpoint and its dataset, shared by the export and runtime tests."""
    from edgeseg.engine.train import train

    root = tmp_path_factory.mktemp("export")
    data = tiny_shapes(root / "shapes")
    train(tiny_recipe(data, root / "run", steps=3), show_progress=False, log=lambda *_: None)
    return root / "run" / "best.pt", data


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory):
    """A static 128x128 ONNX bundle of the tiny model (the demo and bench tests run it)."""
    pytest.importorskip("onnxruntime")
    from edgeseg.export import export_bundle

    checkpoint, data = tiny_model
    out = tmp_path_factory.mktemp("bundle") / "onnx"
    export_bundle(checkpoint, "onnx", out, imgsz="128", static=True, log=lambda *_: None)
    return out
