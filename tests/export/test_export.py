"""Bundles for onnx / openvino / jetson from a tiny model: parity with PyTorch, INT8, bad input."""


import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.export import export_bundle
from edgeseg.runtime import Predictor, read_bundle
from tests.helpers import torch_raw

onnx_ok = pytest.importorskip("onnxruntime") and pytest.importorskip("onnx")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_fp32_bundle_matches_pytorch_at_two_sizes(tiny_model, tmp_path, target):
    if target == "openvino":
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")
    checkpoint, data = tiny_model
    out = tmp_path / target
    export_bundle(checkpoint, target, out, imgsz="128", log=lambda *_: None)
    bundle = read_bundle(out)
    meta = bundle.meta
    assert meta["precision"] == "fp32" and meta["class_names"] == ["circle", "triangle", "rectangle", "star"]
    assert meta["source"]["sha256"] and meta["versions"]["edgeseg"]
    predictor = Predictor(out)
    for hw in [(128, 128), (96, 160)]:  # the second size exercises the dynamic H/W graph
        x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
        scores, masks = predictor.raw(x)
        ref_scores, ref_masks = torch_raw(checkpoint, x)
        assert masks.shape == (ref_masks.shape[0], hw[0] // 4, hw[1] // 4)
        assert np.abs(scores - ref_scores).max() <= 1e-4
        assert np.abs(_sigmoid(masks) - _sigmoid(ref_masks)).max() <= 1e-4


def test_export_with_data_records_accuracy(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    out = tmp_path / "b"
    export_bundle(checkpoint, "onnx", out, imgsz="128", data=str(data / "val"), log=lambda *_: None)
    acc = read_bundle(out).meta["accuracy"]
    assert abs(acc["drop"]) <= 0.1 and acc["images"] == 4


def test_int8_onnx_keeps_float_ops_and_runs(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    out = tmp_path / "int8"
    export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"), log=lambda *_: None)
    import onnx

    model = onnx.load(str(read_bundle(out).artifact()))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # sigmoid / softmax never get quantized: no QuantizeLinear directly consumes their output
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert not any(n.op_type == "QuantizeLinear" and producers.get(n.input[0]) in ("Sigmoid", "Softmax")
                   for n in model.graph.node)
    # MatMuls of two activations (IAM pooling, mask product) are not quantized: a MatMul may have
    # at most one dequantized activation input, the other dequantized input must be a weight.
    consts = {i.name for i in model.graph.initializer}
    node_of = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "MatMul":
            dq = [node_of[i] for i in n.input if producers.get(i) == "DequantizeLinear"]
            assert len(dq) < 2 or any(d.input[0] in consts for d in dq), n.name
    assert any(n.op_type == "Conv" and producers.get(n.input[1]) == "DequantizeLinear" for n in model.graph.node)
    scores, masks = Predictor(out).raw(np.zeros((1, 3, 128, 128), np.float32))
    assert np.isfinite(scores).all() and np.isfinite(masks).all()


def test_jetson_bundle_onnx_qdq_and_cache(tiny_model, tmp_path):
    import onnx

    from edgeseg.export.tensorrt import read_calibration_cache

    checkpoint, data = tiny_model
    out = tmp_path / "jetson"
    export_bundle(checkpoint, "jetson", out, precision="int8", imgsz="128", calib=str(data / "train"),
                  data=str(data / "val"), log=lambda *_: None)
    bundle = read_bundle(out)
    for role in ("onnx", "qdq"):
        model = onnx.load(str(bundle.artifact(role)))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version <= 17
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims] == [1, 3, 128, 128]  # static for TensorRT
    scales = read_calibration_cache(bundle.artifact("cache"))
    assert "images" in scales and all(s > 0 for s in scales.values())
    assert "trtexec" in bundle.meta["trtexec"] and (out / "README.md").is_file()
    assert "accuracy" in bundle.meta
    # Off the device the same bundle runs in ONNX Runtime (the accuracy gate above did this).
    scores, _ = Predictor(out, backend="onnxruntime").raw(np.zeros((1, 3, 128, 128), np.float32))
    assert np.isfinite(scores).all()
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(EdgesegError, match="needs TensorRT"):
            Predictor(out)
    else:
        with pytest.raises(EdgesegError, match="engine build"):
            Predictor(out)


def test_tensorrt_engine_build_and_eval(tiny_model, tmp_path):
    """Needs a GPU with TensorRT: builds the engine and evaluates it through the runtime."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed here (it needs an NVIDIA GPU)")
    from edgeseg.runtime.backends.tensorrt_backend import build_engine

    checkpoint, data = tiny_model
    out = tmp_path / "jetson"
    export_bundle(checkpoint, "jetson", out, precision="fp32", imgsz="128", log=lambda *_: None)
    build_engine(read_bundle(out), log=lambda *_: None)
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    scores, masks = Predictor(out).raw(x)
    ref_scores, ref_masks = torch_raw(checkpoint, x)
    assert np.abs(scores - ref_scores).max() < 1e-2, trt.__version__


def test_calibration_cache_round_trip(tmp_path):
    from edgeseg.export.tensorrt import read_calibration_cache, write_calibration_cache

    scales = {"images": 0.0173, "/encoder/Conv_output_0": 3.2e-3, "x:y": 1.5}
    write_calibration_cache(tmp_path / "c.cache", scales)
    back = read_calibration_cache(tmp_path / "c.cache")
    assert back.keys() == scales.keys()
    assert all(np.float32(scales[k]) == np.float32(back[k]) for k in scales)


def test_bad_input_leaves_no_bundle(tiny_model, tmp_path):
    checkpoint, data = tiny_model
    out = tmp_path / "none"
    with pytest.raises(EdgesegError, match="unknown target"):
        export_bundle(checkpoint, "toaster", out, log=lambda *_: None)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(EdgesegError, match="empty"):
        export_bundle(checkpoint, "onnx", out, precision="int8", calib=str(empty), log=lambda *_: None)
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(EdgesegError, match="a.png"):
        export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(broken / "images"),
                      log=lambda *_: None)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_conversion_is_one_line_and_writes_nothing(tiny_model, tmp_path, monkeypatch):
    import edgeseg.export.onnx as onnx_format

    def crash(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::frobnicate\n  huge C++ trace")

    monkeypatch.setattr(onnx_format, "export_onnx", crash)
    checkpoint, _ = tiny_model
    out = tmp_path / "b"
    with pytest.raises(EdgesegError, match=r"onnx export failed: RuntimeError: Unsupported operator aten::frobnicate; "
                                           "no bundle written") as info:
        export_bundle(checkpoint, "onnx", out, imgsz="128", log=lambda *_: None)
    assert "\n" not in str(info.value) and not out.exists() and not list(tmp_path.iterdir())


def test_int8_policy_keeps_leading_layers_float_and_folds_relu(tiny_model, tmp_path):
    import onnx

    from edgeseg.export.policy import FLOAT_LEADING_LAYERS

    checkpoint, data = tiny_model
    out = tmp_path / "int8"
    export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"), log=lambda *_: None)
    graph = onnx.load(str(read_bundle(out).artifact())).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = [producers.get(n.input[1]) == "DequantizeLinear" for n in convs]
    assert quantized[:FLOAT_LEADING_LAYERS] == [False] * FLOAT_LEADING_LAYERS and all(quantized[FLOAT_LEADING_LAYERS:])
    # ReLU/ReLU6 after a quantized conv are folded into its output range: none is left between Q/DQ pairs
    assert not any(n.op_type in ("Relu", "Clip") and producers.get(n.input[0]) == "DequantizeLinear"
                   for n in graph.node)


def test_max_drop_falls_back_then_fails_without_a_bundle(tiny_model, tmp_path, monkeypatch):
    import edgeseg.export.onnx as onnx_format

    checkpoint, data = tiny_model
    out = tmp_path / "gated"
    # one fallback round keeps every remaining layer float; the next finds nothing left to try
    monkeypatch.setattr(onnx_format, "next_fallback", lambda layers, already: [n for n in layers if n not in already])
    logs = []
    with pytest.raises(EdgesegError, match="no float fallback left; no bundle written"):
        export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"),
                      data=str(data / "val"), max_drop=-100.0, log=logs.append)
    assert len([line for line in logs if "more layers in float" in line]) == 1
    assert not out.exists() and not list(tmp_path.glob(".edgeseg-export-*"))
    export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"),
                  data=str(data / "val"), max_drop=100.0, log=lambda *_: None)
    assert read_bundle(out).meta["accuracy"]["drop"] <= 100.0


def test_fallback_order_starts_at_the_input_and_doubles():
    from edgeseg.export.policy import FLOAT_LEADING_LAYERS, int8_layers, next_fallback

    layers = [f"conv{i}" for i in range(20)]
    quantized = int8_layers(layers)
    assert quantized[0] == f"conv{FLOAT_LEADING_LAYERS}"
    first = next_fallback(quantized, [])
    assert first == quantized[:4]
    second = next_fallback(int8_layers(layers, first), first)
    assert second == quantized[4:8]
    assert next_fallback([], quantized) == []
