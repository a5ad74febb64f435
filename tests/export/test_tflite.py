"""TFLite bundles (litert-torch + ai-edge-quantizer, run by ai-edge-litert) from a tiny model."""

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.export import export_bundle
from edgeseg.runtime import Predictor, read_bundle
from tests.helpers import assert_agrees, fp32_agreement, raw_outputs, require, torch_raw

require("litert_torch")
require("ai_edge_quantizer")
require("ai_edge_litert")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_fp32_tflite_is_nhwc_matches_pytorch_and_refuses_other_sizes(tiny_model, tmp_path):
    checkpoint, _ = tiny_model
    out = tmp_path / "tflite"
    export_bundle(checkpoint, "tflite", out, imgsz="128", log=lambda *_: None)
    bundle = read_bundle(out)
    assert bundle.backend == "litert" and bundle.input["layout"] == "NHWC" and not bundle.dynamic
    predictor = Predictor(out, threads=1)
    x = np.random.default_rng(0).standard_normal((1, 128, 128, 3)).astype(np.float32)
    scores, masks = raw_outputs(predictor, x)
    ref_scores, ref_masks = torch_raw(checkpoint, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert masks.shape == ref_masks.shape
    assert np.abs(scores - ref_scores).max() <= 1e-4
    assert np.abs(_sigmoid(masks) - _sigmoid(ref_masks)).max() <= 1e-4
    with pytest.raises(EdgesegError, match="takes 128x128 inputs, got 96x160"):
        predictor.raw(np.zeros((1, 96, 160, 3), np.float32))
    # an image of any size goes through the bundle's own fit-and-pad preprocessing
    detections = predictor(np.full((90, 200, 3), 127, np.uint8))
    assert detections.masks.shape[1:] == (90, 200)


def test_int8_tflite_quantizes_convolutions_only(tiny_model, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    checkpoint, data = tiny_model
    out = tmp_path / "int8"
    export_bundle(checkpoint, "tflite", out, precision="int8", imgsz="128", calib=str(data / "train"),
                  log=lambda *_: None)
    bundle = read_bundle(out)
    assert bundle.meta["calibration"]["images"] > 0
    it = Interpreter(str(bundle.artifact()))
    dtype = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    int8_ops = {op["op_name"] for op in ops if any(dtype[i] == np.int8 for i in op["inputs"] if i >= 0)}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= int8_ops
    float_only = {"BATCH_MATMUL", "LOGISTIC", "SOFTMAX", "FULLY_CONNECTED"}
    assert not int8_ops & float_only, int8_ops & float_only
    # Measured against FP32 with dead (all-zero) activation ranges floored: score correlation 0.998,
    # largest score difference 0.05, mask IoU 0.91 on one tiny model; 0.991 / 0.14 / 0.94 on the one
    # trained with the BN fold (chunked or one-shot calibration: identical). ONNX INT8 with a wrong
    # scale: 0.978 / 0.16 / 0.50.
    assert_agrees(fp32_agreement(Predictor(out), checkpoint, data), corr=0.985, max_diff=0.2, iou=0.75)


def test_fp16_tflite_stores_half_weights(tiny_model, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    checkpoint, data = tiny_model
    out = tmp_path / "fp16"
    export_bundle(checkpoint, "tflite", out, precision="fp16", imgsz="128", log=lambda *_: None)
    bundle = read_bundle(out)
    dtypes = [t["dtype"] for t in Interpreter(str(bundle.artifact())).get_tensor_details()]
    assert np.float16 in dtypes
    x = np.random.default_rng(1).standard_normal((1, 128, 128, 3)).astype(np.float32)
    scores, _ = raw_outputs(Predictor(out), x)
    ref_scores, _ = torch_raw(checkpoint, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert np.abs(scores - ref_scores).max() < 1e-2
    assert_agrees(fp32_agreement(Predictor(out), checkpoint, data), corr=0.9999, max_diff=0.01, iou=0.95)
