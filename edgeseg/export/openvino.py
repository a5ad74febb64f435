"""OpenVINO IR export: converted from the ONNX graph; FP32 stays FP32 (no silent FP16
compression), FP16 on request; INT8 with NNCF post-training quantization, which keeps
activations such as sigmoid/softmax in float by default (our INT8 policy)."""

from __future__ import annotations

import importlib.util

from edgeseg.export.calibration import CalibrationInputs
from edgeseg.export.onnx import export_onnx
from edgeseg.export.policy import int8_layers, leading_float_layers, next_fallback
from edgeseg.export.quiet import quiet

PRECISIONS = ("fp32", "fp16", "int8")
INSTALL_HINT = "pip install -c constraints.txt 'edgeseg[onnx,openvino]'"


def is_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("openvino", "nncf", "onnx", "onnxslim", "onnxscript"))


def export(job) -> dict:
    import openvino as ov

    onnx_path = job.folder.parent / "source.onnx"
    export_onnx(job.model, onnx_path, job.input_hw, job.dynamic, job.opset)
    model = ov.convert_model(str(onnx_path))
    meta = {"backend": "openvino", "versions": {"openvino": ov.__version__}, "float_ops": "all"}
    if job.precision == "int8":
        model, meta["calibration"] = _quantize(model, job)
        meta["float_ops"] = ("NNCF defaults (activations such as sigmoid/softmax in float), activation MatMuls, "
                             + ("weighted MatMuls (Linear layers), elementwise arithmetic and normalisations, "
                                if job.int8.convolutions_only else "")
                             + f"the first {job.int8.float_leading_layers} weighted layers")
    xml = job.folder / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=job.precision == "fp16")
    meta["artifacts"] = {"model": xml.name, "weights": "model.bin"}
    return meta


# NNCF would otherwise put FakeQuantize on the score product/sqrt and the IAM normalisation, which
# our policy keeps float (measured: AP drop 4.7 -> 1.0 on the quickstart model).
FLOAT_TYPES = ["Divide", "Multiply", "Sqrt"]
# Under a convolutions-only policy NNCF's mixed preset would still quantize residual adds, box
# arithmetic (Subtract, Minimum/Maximum, Power), LayerNorms (MVN) and gathers: on AdaMixer that
# cost 14.6 mask AP points with every Linear layer already float.
CONVOLUTIONS_ONLY_FLOAT_TYPES = ["Add", "Subtract", "Minimum", "Maximum", "Power", "MVN", "Gather", "Squeeze",
                                 "GridSample", "Exp", "Log", "Sin", "ReduceMean", "Softmax"]


def _quantize(model, job):
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    # A sized, re-iterable view that reads the images again on every NNCF pass (a list held the
    # whole preprocessed set: 554 MB at 608 px); NNCF's statistics are running ones.
    data = CalibrationInputs(job.calib, job.input_hw)
    names = (leading_float_layers(weighted_ops(model), job.int8.float_leading_layers) + job.exclude
             + activation_matmuls(model) + output_resizes(model)
             + (weighted_matmuls(model) if job.int8.convolutions_only else []))
    types = FLOAT_TYPES + (CONVOLUTIONS_ONLY_FLOAT_TYPES if job.int8.convolutions_only else [])
    ignored = nncf.IgnoredScope(names=names, types=types, validate=False)
    # NNCF's default activation ranges (mean over images of per-image min/max): reduced inside the
    # graph, so calibration memory stays at one inference. Its histogram ranges fetch every
    # calibrated tensor whole (R-50 at 608: peak 2.93 GB against 1.9) for the same AP drop on the
    # quickstart model (5.78 vs 5.77 points). No overflow fix: with histogram ranges the two moved an
    # earlier model's drop from 0.84 to 0.67.
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE)
    with quiet():  # per-layer range warnings and progress bars
        quantized = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data), ignored_scope=ignored,
                                  preset=nncf.QuantizationPreset.MIXED, advanced_parameters=advanced)
    return quantized, {"scheme": "NNCF PTQ (mixed preset, mean min/max ranges)", "images": len(data),
                       "float_types": types, "float_nodes": names}


def activation_matmuls(model) -> list[str]:
    """MatMuls of two activations (IAM pooling, mask product, PPM pooling) stay float."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
            and not any(_is_constant(op.input_value(i).get_node()) for i in range(2))]


def output_resizes(model) -> list[str]:
    """Resizes that produce a model output (the mask logits): an INT8 input there makes 8-bit masks."""
    outputs = {r.input_value(0).get_node().get_friendly_name() for r in model.get_results()}
    return [op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() == "Interpolate" and op.get_friendly_name() in outputs]


def weighted_matmuls(model) -> list[str]:
    """Weighted MatMuls (Linear layers): float under a policy that quantizes convolutions only."""
    matmuls = set(activation_matmuls(model))
    return [op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() == "MatMul" and op.get_friendly_name() not in matmuls]


def weighted_ops(model) -> list[str]:
    """Convolutions and weighted MatMuls in graph order."""
    matmuls = set(activation_matmuls(model))
    return [op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul") and op.get_friendly_name() not in matmuls]


def _is_constant(node) -> bool:
    while node.get_type_name() in ("Convert", "Reshape", "Transpose", "Unsqueeze") and node.get_input_size():
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


def fallback_candidates(job, already: list[str]) -> list[str]:
    """Next weighted layers to keep in float (see ``policy.next_fallback``)."""
    import openvino as ov

    onnx_path = job.folder.parent / "source.onnx"
    model = ov.convert_model(str(onnx_path))
    names = int8_layers(weighted_ops(model), job.int8.float_leading_layers,
                        already + (weighted_matmuls(model) if job.int8.convolutions_only else []))
    return next_fallback(names, already)

