"""INT8 calibration streams the calibration set (issue 15): statistics are collected a bounded
chunk of images at a time and merged, and the result matches a one-shot calibration."""

from types import SimpleNamespace

import numpy as np
import pytest

from edgeseg.export import calibration as calibration_module
from edgeseg.export.calibration import CalibrationInputs, CalibrationSet, calibration_inputs, chunk_bounds
from edgeseg.models.registry import Int8Policy
from tests.helpers import require

HW = (32, 32)


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    """Seven noise images of different contrast: every chunk changes the ranges (7 is prime, so
    ONNX Runtime's stride has to be 1 or 7)."""
    import cv2

    root = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        scale = 40 + 30 * i
        image = np.clip(128 + scale * rng.standard_normal((40, 48, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / f"{i}.png"), image)
        paths.append(root / f"{i}.png")
    return CalibrationSet(str(root), paths)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """Conv -> Relu -> Conv -> Relu -> Conv, random weights, input ``images``."""
    require("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)

    def weight(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    inits = [weight("w1", (8, 3, 3, 3)), weight("b1", (8,)), weight("w2", (8, 8, 3, 3)), weight("b2", (8,)),
             weight("w3", (4, 8, 1, 1)), weight("b3", (4,))]
    nodes = [helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["out"], name="conv3")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *HW])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, *HW])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_calibration_inputs_stream_and_reiterate(calib):
    import types

    assert isinstance(calibration_inputs(calib, HW), types.GeneratorType)  # never a list of the whole set
    view = CalibrationInputs(calib, HW)
    first, second = list(view), list(view)  # NNCF iterates once per statistics pass
    assert len(view) == len(first) == len(second) == 7
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    part = list(CalibrationInputs(calib, HW, start=2, end=5))
    assert len(part) == 3 and np.array_equal(part[0], first[2])
    assert chunk_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)] and chunk_bounds(7, 1)[-1] == (6, 7)


def _scales(path):
    """Activation (QuantizeLinear of a non-constant tensor) scale per quantized tensor."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


@pytest.mark.parametrize("method", ["percentile", "minmax"])
def test_onnxruntime_calibrates_in_bounded_chunks_with_one_shot_ranges(tiny_onnx, calib, tmp_path, monkeypatch,
                                                                       method):
    require("onnxruntime")
    from onnxruntime.quantization import calibrate

    from edgeseg.export.onnx import quantize_onnx

    batches, outputs = [], []  # per collect_data call: images received (it holds their tensors), tensors per image
    spinning = []  # per collect_data call: whether the session's idle workers spin (they must not)

    def spy(original):
        def collect_data(self, reader):
            count = 0

            class Counting:
                def get_next(self):
                    nonlocal count
                    x = reader.get_next()
                    count += x is not None
                    return x

            original(self, Counting())
            batches.append(count)
            outputs.append(len(self.infer_session.get_outputs()))
            try:
                spinning.append(self.infer_session.get_session_options().get_session_config_entry(
                    "session.intra_op.allow_spinning"))
            except RuntimeError:  # not set: ORT's default, spinning
                spinning.append(None)
        return collect_data

    for cls in (calibrate.HistogramCalibrater, calibrate.MinMaxCalibrater):
        monkeypatch.setattr(cls, "collect_data", spy(cls.collect_data))

    meta = quantize_onnx(tiny_onnx, tmp_path / "chunked.onnx", calib, HW, leading=0, method=method)
    assert batches == [1] * 7 and meta["images_per_pass"] == 1 and meta["tensor_groups"] == 1
    assert spinning == ["0"] * 7
    everything = outputs[0]
    batches.clear()
    quantize_onnx(tiny_onnx, tmp_path / "one_shot.onnx", calib, HW, leading=0, method=method, chunk=7)
    assert batches == [7]  # the old behaviour: every image's tensors at once

    chunked, one_shot = _scales(tmp_path / "chunked.onnx"), _scales(tmp_path / "one_shot.onnx")
    assert set(chunked) == set(one_shot) and len(chunked) >= 3  # the input and both Relu outputs
    for name, scale in one_shot.items():
        # min/max merges exactly; a merged histogram has the first chunk's bin width, so the
        # percentile lands within a bin or two of the one-shot one (2048 bins)
        assert chunked[name] == pytest.approx(scale, rel=1e-6 if method == "minmax" else 2e-3), name

    if method == "percentile":  # tensor groups: 40 kB per image is one 8x32x32 float tensor
        batches.clear(), outputs.clear()
        meta = quantize_onnx(tiny_onnx, tmp_path / "grouped.onnx", calib, HW, leading=0, method=method, budget=40_000)
        groups = meta["tensor_groups"]
        assert groups >= 3 and batches == [1] * 7 * groups and max(outputs) < everything
        assert set(spinning) == {"0"}  # every group's session too
        assert _scales(tmp_path / "grouped.onnx") == chunked  # a histogram is per tensor: the same ranges

        # an ONNX Runtime without calibration caches: quantize_static's own stride loop, same chunks
        import onnxruntime.quantization as ortq

        quantize_static = ortq.quantize_static
        monkeypatch.setattr(ortq, "quantize_static", lambda model, out, reader, **kw: quantize_static(model, out, reader, **kw))
        batches.clear()
        meta = quantize_onnx(tiny_onnx, tmp_path / "strided.onnx", calib, HW, leading=0, method=method)
        assert batches == [1] * 7 and meta["tensor_groups"] == 1
        assert _scales(tmp_path / "strided.onnx") == chunked


def test_openvino_nncf_gets_a_streaming_dataset(tiny_onnx, calib, monkeypatch):
    require("openvino")
    nncf = require("nncf")
    import openvino as ov

    from edgeseg.export import openvino as ov_export

    reads = []
    monkeypatch.setattr(calibration_module, "read_image_rgb",
                        lambda path, read=calibration_module.read_image_rgb: reads.append(path) or read(path))
    seen = {}
    quantize = nncf.quantize

    def spy(model, dataset, **kwargs):
        seen["source"], seen["length"], seen["subset"] = dataset._data_source, dataset.get_length(), kwargs["subset_size"]
        return quantize(model, dataset, **kwargs)

    monkeypatch.setattr(nncf, "quantize", spy)
    job = SimpleNamespace(calib=calib, input_hw=HW, exclude=[], int8=Int8Policy(float_leading_layers=0))
    quantized, meta = ov_export._quantize(ov.convert_model(str(tiny_onnx)), job)
    assert isinstance(seen["source"], CalibrationInputs) and seen["length"] == seen["subset"] == meta["images"] == 7
    assert len(reads) >= 7 and len(reads) % 7 == 0  # every pass reads the images again, one at a time
    assert any(op.get_type_name() == "FakeQuantize" for op in quantized.get_ordered_ops())


def _tiny_tflite(path):
    """Conv(3x3, ReLU) -> Conv(1x1), NHWC, written with the flatbuffer schema (no converter: seconds)."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    rng = np.random.default_rng(2)
    buffers, tensors, ops = [fb.BufferT()], [], []

    def tensor(name, shape, data=None):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), fb.TensorType.FLOAT32, 0
        if data is not None:
            buffers.append(fb.BufferT())
            buffers[-1].data = np.frombuffer(data.astype(np.float32).tobytes(), np.uint8)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    def conv(x, cin, cout, k, name, activation):
        w = tensor(f"{name}_w", (cout, k, k, cin), rng.standard_normal((cout, k, k, cin)) * 0.3)
        b = tensor(f"{name}_b", (cout,), rng.standard_normal(cout) * 0.1)
        y = tensor(name, (1, *HW, cout))
        op, opts = fb.OperatorT(), fb.Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH, opts.fusedActivationFunction = fb.Padding.SAME, 1, 1, activation
        op.opcodeIndex, op.inputs, op.outputs = 0, [x, w, b], [y]
        op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.Conv2DOptions, opts
        ops.append(op)
        return y

    x = tensor("images", (1, *HW, 3))
    y = conv(conv(x, 3, 8, 3, "conv1", fb.ActivationFunctionType.RELU), 8, 4, 1, "conv2", fb.ActivationFunctionType.NONE)
    code, sub, sig, model = fb.OperatorCodeT(), fb.SubGraphT(), fb.SignatureDefT(), fb.ModelT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.CONV_2D, 1
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = tensors, [x], [y], ops, "main"
    tin, tout = fb.TensorMapT(), fb.TensorMapT()
    tin.name, tin.tensorIndex, tout.name, tout.tensorIndex = "images", x, "output_0", y
    sig.inputs, sig.outputs, sig.signatureKey, sig.subgraphIndex = [tin], [tout], "serving_default", 0
    model.version, model.operatorCodes, model.subgraphs, model.buffers, model.signatureDefs = 3, [code], [sub], buffers, [sig]
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


def test_tflite_calibrates_in_chunks_with_one_shot_statistics(calib, tmp_path, monkeypatch):
    require("ai_edge_quantizer")
    require("ai_edge_litert")
    from ai_edge_quantizer import quantizer

    from edgeseg.export import tflite

    src = tmp_path / "tiny.tflite"
    _tiny_tflite(src)
    sizes = []
    original = quantizer.Quantizer.calibrate

    def spy(self, calibration_data, *args, **kwargs):
        sizes.append(len(calibration_data[tflite.SIGNATURE]))  # the images of one call, held at once
        return original(self, calibration_data, *args, **kwargs)

    monkeypatch.setattr(quantizer.Quantizer, "calibrate", spy)
    name = tflite._input_name(src)
    chunked = tflite.calibrate(tflite._quantizer(src, "int8", []), name, calib, HW, chunk=3)
    assert sizes == [3, 3, 1]
    one_shot = tflite.calibrate(tflite._quantizer(src, "int8", []), name, calib, HW, chunk=7)
    assert sizes[3:] == [7]
    # ai-edge-quantizer's default mode, which holds every tensor of an image: the same statistics
    preserved = tflite.calibrate(tflite._quantizer(src, "int8", []), name, calib, HW, chunk=7, profiler=False)
    assert chunked.keys() == one_shot.keys() and {"images", "conv1", "conv2"} <= set(preserved) <= set(chunked)
    for tensor, stats in one_shot.items():  # running statistics: chunks resume where the last one stopped
        for key in ("min", "max"):
            np.testing.assert_allclose(chunked[tensor][key], stats[key], rtol=1e-6, atol=1e-7, err_msg=tensor)
            if tensor in preserved:
                np.testing.assert_allclose(np.ravel(preserved[tensor][key]), np.ravel(stats[key]), rtol=1e-6,
                                           atol=1e-7, err_msg=tensor)
    tflite.quantize(src, tmp_path / "int8.tflite", "int8", calib, HW)  # the whole INT8 path on the tiny model
    assert (tmp_path / "int8.tflite").stat().st_size > 0


def test_histograms_of_a_tensor_with_one_magnitude_do_not_fail():
    # |x| all within float32 resolution of each other: ORT's first histogram over [min, max] has
    # no room for 2048 distinct bins and raises; ours bins it over [0, max]
    require("onnxruntime")
    from onnxruntime.quantization.calibrate import HistogramCollector

    from edgeseg.export.onnx import zero_based_collector

    values = np.float32(1000.0) + np.arange(64, dtype=np.float32) * np.float32(6.1e-5)
    options = dict(method="percentile", symmetric=True, num_bins=2048, num_quantized_bins=128,
                   percentile=99.999, scenario="same")
    with pytest.raises(ValueError, match="Too many bins"):
        HistogramCollector(**options).collect({"t": [values]})
    collector = zero_based_collector(SimpleNamespace(**options))
    collector.collect({"t": [values], "normal": [np.linspace(-1, 2, 64, dtype=np.float32)]})
    collector.collect({"t": [values * 1.5], "normal": [np.linspace(-1, 3, 64, dtype=np.float32)]})
    ranges = collector.compute_collection_result()
    assert float(ranges["t"][1]) == pytest.approx(1500.0, rel=2e-3)
    assert float(ranges["normal"][1]) == pytest.approx(3.0, rel=2e-3)
