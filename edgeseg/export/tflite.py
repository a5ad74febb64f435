"""TFLite/LiteRT export: litert-torch converts the torch graph directly (no TensorFlow, no
ONNX detour) with an NHWC input, which is what XNNPACK on Arm boards wants. FP16 stores
weights as float16; INT8 is ai-edge-quantizer static quantization of the convolutions only
(see ``edgeseg.export.policy``): BATCH_MATMUL (IAM pooling, mask product), the fully connected
heads, sigmoid and softmax stay float."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from edgeseg.export.calibration import calibration_inputs, chunk_bounds
from edgeseg.export.policy import int8_layers, leading_float_layers, next_fallback
from edgeseg.export.quiet import quiet

PRECISIONS = ("fp32", "fp16", "int8")
INSTALL_HINT = "pip install -c constraints.txt 'edgeseg[tflite]'"
# FULLY_CONNECTED (the instance heads) stays float: TFLite static INT8 also quantizes an op's
# output, and INT8 class/kernel logits cost 0.8 mask AP on the quickstart model (0.09 without).
MIN_RANGE = 1e-2  # smallest calibrated activation range (see floor_ranges)
QUANTIZED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
SIGNATURE = "serving_default"
# Calibration: ai-edge-quantizer's default mode (CALIBRATION_PRESERVE_ALL_TENSORS) keeps every
# intermediate tensor of an image in the interpreter and copies them all into Python to take their
# min/max (R-50 at 608: +2.8 GB for one image). The profiler-based mode has the interpreter track
# each tensor's min/max in C++ during the run: the same statistics (running min/max with the same
# moving-average update; measured equal to 4e-7 on the quickstart model) at ordinary inference
# memory. calibrate() also lists its whole dataset first (to size a progress bar), so it is called
# CALIB_CHUNK images at a time, each call resuming from the last one's result
# (previous_calibration_result; the update is stateless, so chunks do not change the result).
CALIB_CHUNK = 16

def is_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"))


def convert(model, path: Path, input_hw) -> None:
    import litert_torch
    import torch

    litert_torch.config.show_progress = False
    from edgeseg.models.bilinear import matmul_sampling

    x = torch.zeros(1, *input_hw, 3)
    nhwc = litert_torch.to_channel_last_io(model, args=[0]).eval()
    # grid_sample would become GATHER_ND chains that XNNPACK does not run (see models/bilinear.py)
    with torch.no_grad(), matmul_sampling():
        litert_torch.convert(nhwc, (x,)).export(str(path))


def _quantizer(path: Path, precision: str, exclude: list[str]):
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer

    qt = quantizer.Quantizer(str(path))
    ops = qtyping.TFLOperationName
    # layers kept float are left out of the pattern itself: an op's scope is "<output name>;"
    pattern = f"^(?!(?:{'|'.join(map(re.escape, exclude))});$).*" if exclude else ".*"
    for op in QUANTIZED_OPS:
        if precision == "int8":
            qt.add_static_config(pattern, ops[op], activation_num_bits=8, weight_num_bits=8)
        else:
            qt.add_weight_only_config(pattern, ops[op], 16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    return qt


def floor_ranges(calibration: dict) -> dict:
    """Widen activation ranges that calibrated to (almost) nothing, e.g. a ReLU output that is zero
    on every calibration image: its scale would be ~1e-12, the next layer's bias scale ~1e-15, and
    XNNPACK refuses such a model. The values there are zeros, so any small range is exact."""
    for stats in calibration.values():
        if "min" in stats and "max" in stats:
            low = np.asarray(stats["min"], np.float32)
            stats["max"] = np.maximum(np.asarray(stats["max"], np.float32), low + MIN_RANGE)
    return calibration


def quantize(src: Path, dst: Path, precision: str, calib=None, input_hw=None, exclude: list[str] | None = None,
             leading: int = 0) -> dict:
    exclude = exclude or []
    if precision == "int8":
        exclude = leading_float_layers(weighted_tensors(src), leading) + exclude
    qt = _quantizer(src, precision, exclude)
    result = None
    if precision == "int8":
        result = floor_ranges(calibrate(qt, _input_name(src), calib, input_hw))
    qt.quantize(result).export_model(str(dst), overwrite=True)
    if precision == "fp16":
        return {"scheme": "float16 weights (FLOAT_CASTING), float32 compute"}
    return {"scheme": "ai-edge-quantizer static INT8 (int8 activations, per-channel int8 weights)",
            "quantized_ops": list(QUANTIZED_OPS), "float_nodes": exclude}


def calibrate(qt, input_name: str, calib, input_hw, chunk: int = CALIB_CHUNK, profiler: bool = True) -> dict:
    """Min/max statistics of the whole set, ``chunk`` images per calibrate() call (see CALIB_CHUNK);
    ``profiler=False``: ai-edge-quantizer's default mode, which holds every tensor of an image."""
    from ai_edge_quantizer.calibrator import CalibrationMode

    mode = CalibrationMode.CALIBRATION_PROFILER_BASED if profiler else CalibrationMode.CALIBRATION_PRESERVE_ALL_TENSORS
    result = None
    for start, end in chunk_bounds(len(calib.images), chunk):
        data = [{input_name: x} for x in calibration_inputs(calib, input_hw, layout="NHWC", start=start, end=end)]
        result = qt.calibrate({SIGNATURE: data}, previous_calibration_result=result, num_threads=2, mode=mode)
    # the profiler reports float64 scalars per tensor; the default mode float32 (same values)
    return {name: {k: np.asarray(v, np.float32) if k in ("min", "max") else v for k, v in qsv.items()}
            for name, qsv in result.items()}


def _input_name(path: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(str(path)).get_signature_runner(SIGNATURE)
    return next(iter(runner.get_input_details()))


def weighted_tensors(path: Path) -> list[str]:
    """Output tensor names of the quantizable ops, in graph order."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path))
    tensors = {t["index"]: t["name"] for t in it.get_tensor_details()}
    return [tensors[op["outputs"][0]] for op in it._get_ops_details() if op["op_name"] in QUANTIZED_OPS]


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("litert-torch", "ai-edge-quantizer", "ai-edge-litert")}


def export(job) -> dict:
    with quiet():  # litert-torch and ai-edge-quantizer print progress bars and size reports
        return _export(job)


def _export(job) -> dict:
    fp32 = job.folder / "model.tflite"
    convert(job.model, fp32, job.input_hw)
    meta = {"backend": "litert", "artifacts": {"model": fp32.name}, "versions": versions(), "float_ops": "all"}
    if job.precision != "fp32":
        out = job.folder / f"model_{job.precision}.tflite"
        meta["calibration" if job.precision == "int8" else "quantization"] = quantize(
            fp32, out, job.precision, job.calib, job.input_hw, job.exclude, job.int8.float_leading_layers)
        fp32.rename(job.folder.parent / "reference_fp32.tflite")
        meta["artifacts"] = {"model": out.name}
        if job.precision == "int8":
            meta["float_ops"] = ("everything except CONV_2D/DEPTHWISE_CONV_2D (heads and BATCH_MATMUL float); "
                                 f"the first {job.int8.float_leading_layers} weighted layers"
                                 + (f"; plus {len(job.exclude)} fallback layers" if job.exclude else ""))
    return meta


def fallback_candidates(job, already: list[str]) -> list[str]:
    """Next weighted layers to keep in float (see ``policy.next_fallback``)."""
    names = int8_layers(weighted_tensors(job.folder.parent / "reference_fp32.tflite"), job.int8.float_leading_layers,
                        already)
    return next_fallback(names, already)

