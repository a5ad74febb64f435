"""Bundles for onnx / openvino / jetson from a tiny model: parity with PyTorch, INT8, bad input."""


import shutil

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.export import export_bundle
from edgeseg.runtime import Predictor, read_bundle
from tests.helpers import assert_agrees, fp32_agreement, raw_outputs, require, torch_raw

require("onnxruntime")
require("onnx")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_fp32_bundle_matches_pytorch_at_two_sizes(tiny_model, tmp_path, target, request):
    checkpoint, data = tiny_model
    if target == "openvino":
        require("openvino")
        require("nncf")
        out = tmp_path / target
        export_bundle(checkpoint, target, out, imgsz="128", log=lambda *_: None)
    else:
        out = request.getfixturevalue("onnx_bundle")  # the shared default ONNX export
    bundle = read_bundle(out)
    meta = bundle.meta
    assert meta["precision"] == "fp32" and meta["class_names"] == ["circle", "triangle", "rectangle", "star"]
    assert meta["source"]["sha256"] and meta["versions"]["edgeseg"]
    predictor = Predictor(out)
    for hw in [(128, 128), (96, 160)]:  # the second size exercises the dynamic H/W graph
        x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
        scores, masks = raw_outputs(predictor, x)
        ref_scores, ref_masks = torch_raw(checkpoint, x)
        assert masks.shape == (ref_masks.shape[0], hw[0] // 4, hw[1] // 4)
        assert np.abs(scores - ref_scores).max() <= 1e-4
        assert np.abs(_sigmoid(masks) - _sigmoid(ref_masks)).max() <= 1e-4


def test_export_with_data_records_accuracy(onnx_bundle):
    acc = read_bundle(onnx_bundle).meta["accuracy"]  # exported with data=val
    # the tiny model detects (AP ~43): the comparison is not 0 against 0
    assert acc["images"] == 4 and acc["float"] > 20 and abs(acc["drop"]) <= 0.1


def test_export_of_a_model_with_other_classes_measures_class_agnostic(tiny_model, tmp_path):
    """An annotation-free model knows "object"; against a labelled val set only class-agnostic AP means anything."""
    from edgeseg.engine.checkpoint import load_model, save_checkpoint

    checkpoint, data = tiny_model
    model, recipe, names = load_model(checkpoint)
    renamed = tmp_path / "renamed.pt"
    save_checkpoint(renamed, model, recipe, [f"thing {k}" for k in range(len(names))])
    logs = []
    export_bundle(renamed, "onnx", tmp_path / "b", imgsz="128", static=True, data=str(data / "val"), log=logs.append)
    acc = read_bundle(tmp_path / "b").meta["accuracy"]
    assert acc["metric"] == "mask AP (class-agnostic)" and acc["float"] > 20 and abs(acc["drop"]) <= 0.1
    assert any("class-agnostic" in line for line in logs)


@pytest.fixture(scope="module")
def int8_onnx(tiny_model, tmp_path_factory):
    """One INT8 ONNX export, shared by the tests of its graph and of its numbers."""
    checkpoint, data = tiny_model
    out = tmp_path_factory.mktemp("int8") / "int8"
    export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"), log=lambda *_: None)
    return out


def test_int8_onnx_keeps_float_ops_and_follows_fp32(tiny_model, int8_onnx):
    import onnx

    checkpoint, data = tiny_model
    out = int8_onnx

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
    # Same images through FP32 and INT8. Measured (U8S8 per-channel, percentile): score correlation
    # 0.999, largest score difference 0.03, mask IoU 0.89. One activation's dequantization scale
    # doubled mid-graph: 0.978 / 0.16 / 0.50; a zero point off by 20 there: 0.991 / 0.11 / 0.80.
    # The largest score difference is one element of all queries x classes: 0.03 before, 0.073 since the
    # tiny model trains with the BN fold (one-shot and streamed calibration alike), so its bound sits
    # between that and the zero-point fault's 0.11.
    assert_agrees(fp32_agreement(Predictor(out), checkpoint, data), corr=0.995, max_diff=0.09, iou=0.75)


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
    # measured: mask AP 42.7 float, 25.1 Q/DQ in ONNX Runtime (4 images, 12 objects); with every activation
    # scale 8x too small no mask overlaps its FP32 one (IoU 0)
    assert bundle.meta["accuracy"]["float"] > 20 and bundle.meta["accuracy"]["exported"] > 10
    # Off the device ONNX Runtime runs the Q/DQ model (symmetric S8S8). Measured against FP32: score
    # correlation 0.995, largest score difference 0.08, mask IoU 0.74 (a few small masks). One
    # activation's dequantization scale doubled: 0.979 / 0.19; a zero point off by 20: 0.89 / 0.40 / 0.48.
    assert_agrees(fp32_agreement(Predictor(out, backend="onnxruntime"), checkpoint, data), corr=0.985,
                  max_diff=0.16, iou=0.6)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(EdgesegError, match="needs TensorRT"):
            Predictor(out)
    else:
        with pytest.raises(EdgesegError, match="engine build"):
            Predictor(out)


@pytest.mark.parametrize("target", ["openvino", "jetson"])
def test_fp16_bundles_follow_fp32(tiny_model, tmp_path, target):
    checkpoint, data = tiny_model
    if target == "openvino":
        require("openvino")
    out = tmp_path / target
    export_bundle(checkpoint, target, out, precision="fp16", imgsz="128", log=lambda *_: None)
    bundle = read_bundle(out)
    assert bundle.meta["precision"] == "fp16"
    agreement = fp32_agreement(Predictor(out, backend="onnxruntime" if target == "jetson" else None), checkpoint, data)
    if target == "openvino":  # half weights in the IR; measured: 1.0000 / 0.002 / 0.99
        assert 'element_type="f16"' in bundle.artifact().read_text()
        assert_agrees(agreement, corr=0.9999, max_diff=0.01, iou=0.95)
    else:  # TensorRT builds FP16 on the device from the FP32 ONNX, which ONNX Runtime runs here
        assert "--fp16" in bundle.meta["trtexec"] and set(bundle.meta["artifacts"]) == {"onnx"}
        assert_agrees(agreement, corr=0.99999, max_diff=1e-4, iou=0.99)


def test_openvino_int8_follows_fp32(tiny_model, tmp_path):
    require("openvino")
    require("nncf")
    checkpoint, data = tiny_model
    out = tmp_path / "ov_int8"
    export_bundle(checkpoint, "openvino", out, precision="int8", imgsz="128", calib=str(data / "train"),
                  log=lambda *_: None)
    bundle = read_bundle(out)
    assert bundle.meta["precision"] == "int8" and "FakeQuantize" in bundle.artifact().read_text()
    # measured (NNCF mixed preset, histogram ranges): 0.995 / 0.10 / 0.87 on one tiny model, 0.981 / 0.11 / 0.79
    # on the one trained with the BN fold (streamed or listed calibration: identical); a wrong scale's mask IoU
    # is 0.50
    assert_agrees(fp32_agreement(Predictor(out), checkpoint, data), corr=0.975, max_diff=0.2, iou=0.75)


def test_tensorrt_engine_build_and_eval(tiny_model, tmp_path):
    """Needs a GPU with TensorRT: builds the engine and evaluates it through the runtime."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed here (it needs an NVIDIA GPU)")
    from edgeseg.runtime.backends.tensorrt_backend import build_engine

    checkpoint, data = tiny_model
    out = tmp_path / "jetson"
    export_bundle(checkpoint, "jetson", out, precision="fp32", imgsz="128", log=lambda *_: None)
    build_engine(read_bundle(out), log=lambda *_: None)
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    scores, masks = raw_outputs(Predictor(out), x)
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


def test_int8_policy_keeps_leading_layers_float_and_folds_relu(int8_onnx):
    import onnx

    from edgeseg.models import get_method

    FLOAT_LEADING_LAYERS = get_method("sparseinst").int8.float_leading_layers
    graph = onnx.load(str(read_bundle(int8_onnx).artifact())).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = [producers.get(n.input[1]) == "DequantizeLinear" for n in convs]
    assert quantized[:FLOAT_LEADING_LAYERS] == [False] * FLOAT_LEADING_LAYERS and all(quantized[FLOAT_LEADING_LAYERS:])
    # ReLU/ReLU6 after a quantized conv are folded into its output range: none is left between Q/DQ pairs
    assert not any(n.op_type in ("Relu", "Clip") and producers.get(n.input[0]) == "DequantizeLinear"
                   for n in graph.node)


def test_max_drop_falls_back_then_fails_without_a_bundle(tiny_model, tmp_path, monkeypatch):
    import edgeseg.export as export_module
    import edgeseg.export.onnx as onnx_format

    checkpoint, data = tiny_model
    out = tmp_path / "gated"
    # one fallback round keeps every remaining layer float; the next finds nothing left to try
    monkeypatch.setattr(onnx_format, "next_fallback", lambda layers, already: [n for n in layers if n not in already])
    measured = export_module._bundle_accuracy
    monkeypatch.setattr(export_module, "_bundle_accuracy", lambda *a: {**measured(*a), "drop": 5.0})  # always too much
    logs = []
    with pytest.raises(EdgesegError, match="drops mask AP by 5.00 points .* no float fallback left; no bundle written"):
        export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"),
                      data=str(data / "val"), max_drop=1.0, log=logs.append)
    assert len([line for line in logs if "more layers in float" in line]) == 1
    assert not out.exists() and not list(tmp_path.glob(".edgeseg-export-*"))
    monkeypatch.setattr(export_module, "_bundle_accuracy", measured)
    export_bundle(checkpoint, "onnx", out, precision="int8", imgsz="128", calib=str(data / "train"),
                  data=str(data / "val"), max_drop=100.0, log=lambda *_: None)
    assert read_bundle(out).meta["accuracy"]["drop"] <= 100.0


def test_fallback_order_starts_at_the_input_and_doubles():
    from edgeseg.export.policy import int8_layers, next_fallback

    layers = [f"conv{i}" for i in range(20)]
    quantized = int8_layers(layers, 2)
    assert quantized[0] == "conv2"
    first = next_fallback(quantized, [])
    assert first == quantized[:4]
    second = next_fallback(int8_layers(layers, 2, first), first)
    assert second == quantized[4:8]
    assert next_fallback([], quantized) == []


def test_out_replaces_a_bundle_but_never_a_users_folder(tiny_model, tmp_path):
    from tests.test_cli import assert_one_line_error, run_cli

    checkpoint, _ = tiny_model
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    result = run_cli("export", checkpoint, "--target", "onnx", "--imgsz", "128", "--out", notes)
    assert_one_line_error(result, str(notes), "not empty and is not a bundle")
    assert [p.name for p in notes.iterdir()] == ["todo.txt"] and (notes / "todo.txt").read_text() == "mine"
    nested = tmp_path / "new" / "folders" / "bundle"  # folders that do not exist yet are created
    export_bundle(checkpoint, "onnx", nested, imgsz="128", log=lambda *_: None)
    assert read_bundle(nested).backend == "onnxruntime"
    out = tmp_path / "bundle"
    shutil.copytree(nested, out)
    shutil.rmtree(tmp_path / "new")
    export_bundle(checkpoint, "onnx", out, imgsz="96", log=lambda *_: None)  # an edgeseg bundle: replaced
    bundle = read_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "notes"]
    # a dynamic bundle runs at the size it was exported for (the recipe's 128/160, scaled to 96)
    assert bundle.input_hw == (96, 96) and (bundle.meta["input"]["min_size"], bundle.meta["input"]["max_size"]) == (96, 120)
    x, meta = Predictor(out).prepare(np.zeros((300, 200, 3), np.uint8))
    assert meta.resized_hw == (120, 80) and x.shape[-2:] == (128, 96)
    check = bundle.meta["check"]["max_rel_diff_vs_pytorch"]  # the export ran the bundle beside PyTorch
    assert check["scores"] <= 1e-4 and check["masks"] <= 1e-4
    assert bundle.meta["outputs"] == {"kind": "query_masks", "names": ["scores", "masks"],
                                      "artifact_names": {"scores": "scores", "masks": "masks"}}


def test_max_drop_and_calibration_arguments(tiny_model, tmp_path):
    import torch

    checkpoint, data = tiny_model
    out = tmp_path / "b"
    with pytest.raises(EdgesegError, match="--max-drop -10: must be a non-negative"):
        export_bundle(checkpoint, "onnx", out, precision="int8", max_drop=-10, data=str(data / "val"), log=print)
    with pytest.raises(EdgesegError, match="--max-drop needs --data"):
        export_bundle(checkpoint, "onnx", out, precision="int8", max_drop=1.0, log=print)
    state = torch.load(checkpoint, weights_only=True)
    state["meta"]["recipe"]["data"]["train"] = "data/not_here/train"  # a path relative to another folder
    moved = tmp_path / "moved.pt"
    torch.save(state, moved)
    with pytest.raises(EdgesegError, match="INT8 needs calibration images: pass --calib .*data/not_here/train"):
        export_bundle(moved, "onnx", out, precision="int8", imgsz="128", log=print)
    assert not out.exists()


def test_non_finite_outputs_refuse_the_export(tiny_model, tmp_path):
    import torch

    checkpoint, _ = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    for key, value in state["model"].items():  # finite weights whose activations overflow float32
        if key.startswith("encoder") and value.ndim == 4:
            value *= 1e30
    blown = tmp_path / "blown.pt"
    torch.save(state, blown)
    out = tmp_path / "b"
    with pytest.raises(EdgesegError, match="outputs NaN or Inf on a test input; no bundle written"):
        export_bundle(blown, "onnx", out, imgsz="128", log=lambda *_: None)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["blown.pt"]
