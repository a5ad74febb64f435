"""Jetson / TensorRT: what the engine builder on the device consumes.

The bundle carries a static ONNX (opset 17, which TensorRT 8.5 on JetPack 5 parses), and for
INT8 both an explicit-quantization Q/DQ ONNX (TensorRT 8.6 / 10.x) and a calibration cache in
TensorRT's text format (implicit calibration, TensorRT 8.5). ``edgeseg engine build`` runs on
the device and adds ``model.engine``. Until then ONNX Runtime can run the ONNX for checks.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np

from edgeseg.errors import fail
from edgeseg.export.calibration import calibration_inputs
from edgeseg.export.onnx import (ACTIVATIONS, QUANTIZED_OPS, calibration_session, export_onnx, fused_activations,
                                 quantizable_nodes, quantize_static_streaming)
from edgeseg.export.policy import next_fallback

PRECISIONS = ("fp32", "fp16", "int8")
INSTALL_HINT = "pip install -c constraints.txt 'edgeseg[onnx]'"
CACHE_HEADER = "TRT-8501-EntropyCalibration2"


def is_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxslim"))


def export(job) -> dict:
    onnx_path = job.folder / "model.onnx"
    export_onnx(job.model, onnx_path, job.input_hw, dynamic=False, opset=job.opset)
    meta = {"backend": "tensorrt", "artifacts": {"onnx": onnx_path.name}, "opset": job.opset,
            "float_ops": "all" if job.precision != "fp16" else "TensorRT FP16 kernels"}
    if job.precision == "int8":
        amax = collect_amax(onnx_path, job.calib, job.input_hw, job.int8.float_leading_layers,
                            not job.int8.convolutions_only)
        write_calibration_cache(job.folder / "calibration.cache", {k: v / 127.0 for k, v in amax.items()})
        qdq = job.folder / "model_qdq.onnx"
        meta["calibration"] = quantize_qdq_symmetric(onnx_path, qdq, job)
        meta["artifacts"] = {"onnx": onnx_path.name, "qdq": qdq.name, "cache": "calibration.cache"}
        meta["float_ops"] = (f"everything except weighted {'Conv' if job.int8.convolutions_only else 'Conv/MatMul/Gemm'}"
                             " (Q/DQ placement)")
    meta["trtexec"] = trtexec_line(meta["artifacts"], job.precision)
    (job.folder / "README.md").write_text(bundle_readme(meta, job.precision))
    return meta


def quantize_qdq_symmetric(src: Path, dst: Path, job) -> dict:
    """TensorRT's explicit quantization wants symmetric INT8 (zero point 0) for activations too.
    Calibrated image by image like the ONNX Runtime export (bounded memory, see onnx.CALIB_CHUNK)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    nodes = quantizable_nodes(src, job.int8.float_leading_layers, job.exclude, not job.int8.convolutions_only)
    nodes += fused_activations(src, nodes)
    options = {"quant_format": QuantFormat.QDQ, "activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8,
               "per_channel": True, "op_types_to_quantize": QUANTIZED_OPS + ACTIVATIONS, "nodes_to_quantize": nodes,
               "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibMovingAverage": False}}
    chunk, groups = quantize_static_streaming(src, dst, job.calib, job.input_hw, CalibrationMethod.Percentile, options)
    return {"scheme": "QDQ S8S8 symmetric per-channel (TensorRT explicit)", "float_nodes": job.exclude,
            "images_per_pass": chunk, "tensor_groups": groups}


def collect_amax(onnx_path: Path, calib, input_hw, leading: int, linear: bool = True) -> dict[str, float]:
    """Max |activation| of every tensor that feeds a quantized op, over the calibration set."""
    import onnx

    model = onnx.load(str(onnx_path))
    quantized = set(quantizable_nodes(onnx_path, leading, linear=linear))
    wanted = {"images"} | {n.input[0] for n in model.graph.node if n.name in quantized}
    known = {o.name for o in model.graph.output}
    for name in sorted(wanted - known - {"images"}):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = calibration_session(model.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    amax: dict[str, float] = {}
    for x in calibration_inputs(calib, input_hw):
        values = dict(zip(names, session.run(names, {"images": x})))
        values["images"] = x
        for name in wanted:
            if name in values:
                amax[name] = max(amax.get(name, 0.0), float(np.abs(values[name]).max()))
    return amax


def write_calibration_cache(path: Path, scales: dict[str, float]) -> None:
    """TensorRT calibration cache: a header line, then ``tensor: <float32 scale as big-endian hex>``."""
    lines = [CACHE_HEADER] + [f"{name}: {struct.pack('>f', max(s, 1e-12)).hex()}" for name, s in sorted(scales.items())]
    path.write_text("\n".join(lines) + "\n")


def read_calibration_cache(path: Path) -> dict[str, float]:
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise fail(path, "not a TensorRT calibration cache (missing TRT- header)")
    scales = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        name, _, value = line.rpartition(":")
        try:
            scales[name.strip()] = struct.unpack(">f", bytes.fromhex(value.strip()))[0]
        except ValueError:
            raise fail(path, f"bad calibration cache line: {line[:80]}") from None
    return scales


def trtexec_line(artifacts: dict, precision: str) -> str:
    if precision == "int8":
        return (f"trtexec --onnx={artifacts['qdq']} --int8 --fp16 --saveEngine=model.engine  "
                f"# TensorRT >= 8.6 (explicit Q/DQ); on 8.5: trtexec --onnx={artifacts['onnx']} --int8 "
                f"--calib={artifacts['cache']} --fp16 --saveEngine=model.engine")
    flag = " --fp16" if precision == "fp16" else ""
    return f"trtexec --onnx={artifacts['onnx']}{flag} --saveEngine=model.engine"


def bundle_readme(meta: dict, precision: str) -> str:
    return (f"# Jetson bundle ({precision})\n\nBuild the engine on the device (it is specific to the GPU and "
            f"TensorRT version):\n\n    edgeseg engine build .            # TensorRT Python API, timing cache\n"
            f"    edgeseg engine build . --dla 0    # Orin: DLA core 0 with GPU fallback\n\nor with trtexec:\n\n"
            f"    {meta['trtexec']}\n\nThen `edgeseg eval . --data VAL` or `edgeseg predict . IMAGE`.\n")


def fallback_candidates(job, already: list[str]) -> list[str]:
    return next_fallback(quantizable_nodes(job.folder / "model.onnx", job.int8.float_leading_layers,
                                           linear=not job.int8.convolutions_only), already)
