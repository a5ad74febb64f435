"""ONNX export (torch.onnx dynamo exporter, onnxslim, checker) and ONNX Runtime INT8 (static QDQ).

INT8 policy for SparseInst, shared by every target: Conv/MatMul/Gemm in INT8 (U8 activations,
S8 per-channel weights); sigmoid/softmax, the IAM normalisation, the mask product's inputs that
are activations only, resizes and the heads' elementwise ops stay float.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.export.calibration import CalibrationSet, calibration_inputs, chunk_bounds, release_memory
from edgeseg.export.policy import int8_layers, next_fallback
from edgeseg.export.quiet import quiet

QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
ACTIVATIONS = ["Relu", "Clip"]  # fused into the preceding quantized conv's output range
INPUT_NAME = "images"


def is_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript", "onnxslim"))


def export_onnx(model, path: Path, input_hw, dynamic: bool = False, opset: int = 18) -> None:
    """Write a self-contained (no external .data) ONNX file of ``model``, a DeployModel whose
    ``output_names`` name the graph's outputs; fails loudly, never half-written."""
    import onnx
    import onnxslim
    import torch

    h, w = input_hw
    x = torch.zeros(1, 3, h, w)
    shapes = None
    if dynamic:
        hh, ww = torch.export.Dim("h32", min=2, max=64), torch.export.Dim("w32", min=2, max=64)
        shapes = {"images": {2: 32 * hh, 3: 32 * ww}}
    with torch.no_grad(), quiet():  # a failure becomes export_bundle's one-line error
        if opset >= 18:
            torch.onnx.export(model, (x,), str(path), input_names=[INPUT_NAME], output_names=list(model.output_names),
                              opset_version=opset, dynamo=True, external_data=False, dynamic_shapes=shapes,
                              verbose=False)
        else:  # consumers limited to opset 17 (TensorRT 8.5 on JetPack 5): TorchScript exporter
            axes = {INPUT_NAME: {2: "height", 3: "width"}} if dynamic else None
            torch.onnx.export(model, (x,), str(path), input_names=[INPUT_NAME], output_names=list(model.output_names),
                              opset_version=opset, dynamo=False, dynamic_axes=axes)
    slim = onnxslim.slim(str(path))
    onnx.save(slim, str(path))
    del slim
    onnx.checker.check_model(str(path), full_check=True)
    release_memory()  # the exporter's garbage: R-50 at 608 keeps 0.57 GB resident otherwise


# INT8 calibration memory (issue 15). ORT's calibrators make every calibrated tensor a graph output
# of an augmented model, and its histogram calibrators keep the outputs of all the images of one
# collect_data call: a plain quantize_static holds the whole set's tensors (12.6 GB for the 256 px
# quickstart model, 18+ GB at 512 and for R-50 at 608). Here collect_data gets CALIB_CHUNK images
# per call and merges them into its running histograms (min/max: running extremes). One image per
# call costs no time (the same tensors are histogrammed). ORT allocates every graph output on
# every run, fetched or not, so one image of R-50 at 608 still returns 923 MB: above
# CALIB_TENSOR_BYTES per image the tensors are calibrated in groups, one pass over the set per
# group (one more inference per image and group; a histogram is per tensor, so groups change
# nothing). The ranges then go to quantize_static as its calibration cache.
CALIB_CHUNK = 1
CALIB_TENSOR_BYTES = 512 * 2**20


class _Images:
    """ONNX Runtime calibration data reader over an iterator of network inputs."""

    def __init__(self, inputs, input_name: str = INPUT_NAME):
        self.inputs, self.input_name = iter(inputs), input_name

    def get_next(self):
        x = next(self.inputs, None)
        return None if x is None else {self.input_name: x}


def calibration_reader(calib: CalibrationSet, input_hw, chunk: int = CALIB_CHUNK, input_name: str = INPUT_NAME):
    """A reader streaming ``calib`` and the ``extra_options`` entry making quantize_static
    calibrate on it ``chunk`` images per collect_data call (CalibStridedMinMax: despite its name, it
    applies to every method; the stride has to divide the set: the largest divisor up to
    ``chunk``). The path for an ONNX Runtime without calibration caches, and for the TensorRT
    Q/DQ export."""
    from onnxruntime.quantization import CalibrationDataReader

    count = len(calib.images)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.set_range(0, count)

        def __len__(self):
            return count

        def set_range(self, start_index: int, end_index: int):
            self.images = _Images(calibration_inputs(calib, input_hw, start=start_index, end=end_index), input_name)

        def get_next(self):
            return self.images.get_next()

    return Reader(), {"CalibStridedMinMax": _divisor_at_most(count, chunk)}


def _divisor_at_most(count: int, size: int) -> int:
    """The largest divisor of ``count`` that is at most ``size`` (1 always divides)."""
    return next(d for d in range(max(1, min(size, count)), 0, -1) if count % d == 0)


def tensor_bytes(path: Path, names, input_hw) -> dict[str, int]:
    """Bytes per image of each tensor in ``names``, from ONNX shape inference with the input fixed
    at ``input_hw`` (a dynamic export has symbolic sizes). A tensor whose size does not resolve
    counts as the largest one that does."""
    import numpy as np
    import onnx

    model = onnx.load(str(path))
    for init in model.graph.initializer:  # shapes need the dims, not the weights (small ones: shape values)
        if len(init.raw_data) > 4096:
            init.ClearField("raw_data")
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, *input_hw)):
        dim.Clear()
        dim.dim_value = value
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    infos = {v.name: v.type.tensor_type for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    sizes = {}
    for name in names:
        info = infos.get(name)
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in info.shape.dim] if info else [0]
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(info.elem_type)).itemsize if info else 4
        sizes[name] = int(np.prod(dims)) * itemsize if all(dims) else -1
    largest = max(sizes.values(), default=0)
    return {name: size if size >= 0 else largest for name, size in sizes.items()}


def tensor_groups(sizes: dict[str, int], budget: int) -> list[list[str]]:
    """Consecutive groups of tensors (in ``sizes`` order) of at most ``budget`` bytes each (a larger
    tensor alone)."""
    groups: list[list[str]] = [[]]
    total = 0
    for name, size in sizes.items():
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += size
    return [g for g in groups if g]


# quantize_static's extra_options that it hands to its calibrator, under the calibrator's names
def calibration_session(model, optimize: bool = True):
    """An ONNX Runtime session for calibration runs (``model``: a path or serialised bytes) whose
    idle workers do not spin: spinning pools on a busy 2-core machine starve whatever else runs
    (an ORT run beside one training process took 69 ms spinning, 44 ms without)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:  # what ORT's calibrators use: the augmented outputs stay as they are
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


CALIBRATOR_OPTIONS = {"CalibTensorRangeSymmetric": "symmetric", "CalibMovingAverage": "moving_average",
                      "CalibMovingAverageConstant": "averaging_constant",
                      "CalibMaxIntermediateOutputs": "max_intermediate_outputs", "CalibPercentile": "percentile"}


def zero_based_collector(calibrator):
    """ORT's histogram collector, except for a tensor whose first absolute values all have nearly
    the same magnitude (an AdaMixer export hit one): ORT bins them over [min, max], too narrow for
    2048 distinct float32 bins, and fails ("Too many bins for data range"). Such a tensor is
    binned over [0, max] instead (percentile ranges are of |x|); every other tensor, and every
    later batch, is collected by ORT unchanged."""
    import numpy as np
    from onnxruntime.quantization.calibrate import HistogramCollector

    class ZeroBasedHistograms(HistogramCollector):
        def collect_absolute_value(self, name_to_arr):
            for tensor, arrays in name_to_arr.items():
                if tensor in self.histogram_dict:
                    continue
                data = np.abs(np.asarray(arrays).reshape(-1))
                if data.size == 0 or np.nanmax(data) <= 0:
                    continue
                try:
                    np.histogram(data, bins=self.num_bins)
                except ValueError:  # seed empty [0, max] bins; ORT then adds this batch to them
                    signed = np.asarray(arrays).reshape(-1)
                    edges = np.linspace(0.0, float(np.nanmax(data)), self.num_bins + 1).astype(data.dtype)
                    self.histogram_dict[tensor] = (np.zeros(self.num_bins, np.int64), edges, np.nanmin(signed),
                                                   np.nanmax(signed))
            return super().collect_absolute_value(name_to_arr)

    return ZeroBasedHistograms(method=calibrator.method, symmetric=calibrator.symmetric, num_bins=calibrator.num_bins,
                               num_quantized_bins=calibrator.num_quantized_bins, percentile=calibrator.percentile,
                               scenario=calibrator.scenario)


def collect_ranges(prepared: Path, calib: CalibrationSet, input_hw, method, options: dict, workdir: Path,
                   chunk: int = CALIB_CHUNK, budget: int = CALIB_TENSOR_BYTES):
    """The calibrator quantize_static would create for ``method`` and ``options`` (its keyword
    arguments), fed ``chunk`` images per collect_data call, over groups of calibrated tensors of at
    most ``budget`` bytes per image. Returns its ranges (TensorsData) and the number of groups."""
    import onnx
    from onnxruntime.quantization.calibrate import HistogramCalibrater, create_calibrator

    extra = options.get("extra_options", {})
    calibrator = create_calibrator(Path(prepared), options.get("op_types_to_quantize"),
                                   augmented_model_path=str(workdir / "augmented.onnx"), calibrate_method=method,
                                   extra_options={v: extra[k] for k, v in CALIBRATOR_OPTIONS.items() if k in extra})
    calibrator.create_inference_session = lambda: setattr(
        calibrator, "infer_session", calibration_session(calibrator.augmented_model_path, optimize=False))
    calibrator.create_inference_session()  # in place of the spinning one create_calibrator opened
    augmented, outputs, groups = calibrator.model, list(calibrator.model.graph.output), [[]]
    if isinstance(calibrator, HistogramCalibrater):  # min/max reduces in the graph: scalar outputs
        calibrator.collector = zero_based_collector(calibrator)
        calibrated = [o.name for o in outputs if o.name in calibrator.tensors_to_calibrate]
        groups = tensor_groups(tensor_bytes(prepared, calibrated, input_hw), budget)
    for i, group in enumerate(groups):
        if len(groups) > 1:  # an augmented model returning this group only
            calibrator.infer_session = None  # one session at a time
            del augmented.graph.output[:]
            augmented.graph.output.extend(o for o in outputs if o.name in set(group))
            # the first save moves the weights to a side file, out of the in-memory model too
            onnx.save(augmented, calibrator.augmented_model_path, save_as_external_data=i == 0,
                      location=Path(calibrator.augmented_model_path).name + ".data")
            calibrator.create_inference_session()
        release_memory()
        for start, end in chunk_bounds(len(calib.images), chunk):
            calibrator.collect_data(_Images(calibration_inputs(calib, input_hw, start=start, end=end)))
    return calibrator.compute_data(), len(groups)


def quantize_onnx(src: Path, dst: Path, calib: CalibrationSet, input_hw, leading: int, method: str = "percentile",
                  exclude_nodes: list[str] | None = None, chunk: int = CALIB_CHUNK,
                  budget: int = CALIB_TENSOR_BYTES, linear: bool = True) -> dict:
    """Static QDQ INT8 with ONNX Runtime: U8 activations, S8 per-channel weights. Statistics are
    collected ``chunk`` images at a time, over tensor groups of ``budget`` bytes per image (see
    CALIB_CHUNK). Min/max gives the one-shot ranges exactly, percentile within a bin or so: a merged
    histogram keeps the first chunk's bin width and grows it in float32 steps, which can leave a
    chunk's largest value out (it matters only where the percentile falls on a handful of values:
    on the quickstart model, one of 100 scales moved 10%, the others under 0.1%). Entropy does
    not: with ORT's defaults its one-shot search has a single candidate (the full range), a merged
    histogram has more bins and so more candidates."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise EdgesegError(f"unknown calibration method '{method}'; valid: {', '.join(methods)}")
    prepared = dst.with_suffix(".prep.onnx")
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    nodes = quantizable_nodes(prepared, leading, exclude_nodes, linear)
    nodes += fused_activations(prepared, nodes)
    options = {"quant_format": QuantFormat.QDQ, "activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8,
               "per_channel": True, "op_types_to_quantize": QUANTIZED_OPS + ACTIVATIONS, "nodes_to_quantize": nodes,
               "extra_options": {"CalibMovingAverage": False}}
    chunk, groups = quantize_static_streaming(prepared, dst, calib, input_hw, methods[method], options, chunk, budget)
    prepared.unlink(missing_ok=True)
    return {"scheme": "QDQ U8S8 per-channel", "method": method, "quantized_ops": QUANTIZED_OPS if linear else ["Conv"],
            "float_nodes": exclude_nodes or [], "images_per_pass": chunk, "tensor_groups": groups}


def quantize_static_streaming(src: Path, dst: Path, calib: CalibrationSet, input_hw, method, options: dict,
                              chunk: int = CALIB_CHUNK, budget: int = CALIB_TENSOR_BYTES) -> tuple[int, int]:
    """``quantize_static(src, dst, **options)`` calibrated on ``calib`` with ``method`` (a
    CalibrationMethod) in bounded memory (see CALIB_CHUNK); ``options`` must not carry a data
    reader or calibration settings of its own. Returns (images per collect_data call, tensor
    groups). Shared with the TensorRT Q/DQ export."""
    import inspect
    import tempfile

    from onnxruntime.quantization import quantize_static

    release_memory()  # before the calibration peak (one image's intermediate tensors)
    with quiet(), tempfile.TemporaryDirectory(prefix="edgeseg-calib-") as tmp:  # ORT prints progress
        if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
            from onnxruntime.quantization.calibrate import save_tensors_data

            ranges, groups = collect_ranges(src, calib, input_hw, method, options, Path(tmp), chunk, budget)
            save_tensors_data(ranges, Path(tmp) / "ranges.json")
            del ranges
            release_memory()
            quantize_static(str(src), str(dst), None, calibrate_method=method,
                            calibration_cache_path=str(Path(tmp) / "ranges.json"), **options)
        else:  # an ONNX Runtime without calibration caches (< 1.31?): chunks, but every tensor at once
            reader, stride = calibration_reader(calib, input_hw, chunk)
            chunk, groups = stride["CalibStridedMinMax"], 1
            quantize_static(str(src), str(dst), reader, calibrate_method=method, **{
                **options, "extra_options": {**options.get("extra_options", {}), **stride}})
    release_memory()
    return chunk, groups


def fused_activations(path: Path, nodes: list[str]) -> list[str]:
    """Relu/Clip (ReLU6) right after a quantized node. Listing them lets ONNX Runtime drop them
    and quantize the conv output over the post-activation range instead of its full pre-activation
    range (measured on the quickstart model: AP drop 1.34 -> 0.50, and faster)."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {o: n.name for n in graph.node for o in n.output}
    chosen = set(nodes)
    return [n.name for n in graph.node if n.op_type in ACTIVATIONS and producer.get(n.input[0]) in chosen]


def quantizable_nodes(path: Path, leading: int, exclude: list[str] | None = None, linear: bool = True) -> list[str]:
    """Conv/MatMul/Gemm nodes that carry weights (Conv only when not ``linear``), minus the
    policy's leading float layers and ``exclude``. MatMuls of two activations (IAM pooling, mask product, PPM pooling matrices) stay
    float: INT8 there destroys the masks (see ``edgeseg.export.policy``)."""
    import onnx

    graph = onnx.load(str(path)).graph
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    weighted = [n.name for n in graph.node
                if n.op_type == "Conv" or (linear and n.op_type in QUANTIZED_OPS and any(i in consts for i in n.input))]
    return int8_layers(weighted, leading, exclude)


def versions() -> dict:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


# --- the target interface -------------------------------------------------------------------
PRECISIONS = ("fp32", "int8")
INSTALL_HINT = "pip install -c constraints.txt 'edgeseg[onnx]'"


def export(job) -> dict:
    """fp32: one ONNX file (dynamic H/W when the target allows). int8: the QDQ model only."""
    fp32 = job.folder / "model.onnx"
    export_onnx(job.model, fp32, job.input_hw, job.dynamic, job.opset)
    meta = {"backend": "onnxruntime", "artifacts": {"model": fp32.name}, "versions": versions(),
            "opset": job.opset, "float_ops": "all"}
    if job.precision == "int8":
        int8 = job.folder / "model_int8.onnx"
        meta["calibration"] = quantize_onnx(fp32, int8, job.calib, job.input_hw, job.int8.float_leading_layers,
                                          exclude_nodes=job.exclude, linear=not job.int8.convolutions_only)
        fp32.unlink()
        meta["artifacts"] = {"model": int8.name}
        meta["float_ops"] = (f"everything except weighted {'Conv' if job.int8.convolutions_only else 'Conv/MatMul/Gemm'} "
                             "(activation MatMuls stay float); "
                             f"the first {job.int8.float_leading_layers} weighted layers"
                             + (f"; plus {len(job.exclude)} fallback nodes" if job.exclude else ""))
    return meta


def fallback_candidates(job, already: list[str]) -> list[str]:
    """Next layers to keep in float (see ``policy.next_fallback``)."""
    return next_fallback(quantizable_nodes_of(job), already)


def quantizable_nodes_of(job) -> list[str]:
    ref = job.folder.parent / "reference_fp32.onnx"
    if not ref.exists():
        export_onnx(job.model, ref, job.input_hw, job.dynamic, job.opset)
    return quantizable_nodes(ref, job.int8.float_leading_layers, linear=not job.int8.convolutions_only)

