"""TensorRT on the device: build the engine from a Jetson bundle, and run it.

``import tensorrt`` happens only here, inside the functions that need it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError, fail
from edgeseg.io import write_bytes
from edgeseg.runtime.backends import require
from edgeseg.runtime.bundle import BUNDLE_FILE, describe_artifact

INSTALL = ("on a Jetson it comes with JetPack (apt package python3-libnvinfer; a venv needs "
           "--system-site-packages to see it); elsewhere: pip install tensorrt")


def build_engine(bundle, precision: str | None = None, dla_core: int | None = None, workspace_gb: float = 1.0,
                 log=print) -> Path:
    """Build ``model.engine`` into the bundle with the TensorRT Python API (timing cache kept)."""
    trt = require("tensorrt", INSTALL, "TensorRT")
    arts = bundle.meta["artifacts"]
    precision = precision or bundle.meta["precision"]
    explicit = precision == "int8" and "qdq" in arts and int(trt.__version__.split(".")[0]) * 10 + int(trt.__version__.split(".")[1]) >= 86
    onnx_file = bundle.path / arts["qdq" if explicit else "onnx"]["file"]
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_file.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise fail(onnx_file, f"TensorRT cannot parse the ONNX: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if not explicit:
            config.int8_calibrator = _cache_calibrator(trt, bundle.path / arts["cache"]["file"])
    if dla_core is not None:
        if builder.num_DLA_cores == 0:
            raise EdgesegError(f"--dla {dla_core}: this device has no DLA cores (DLA is on Jetson Orin/Xavier)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_path = bundle.path / "timing.cache"
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise fail(onnx_file, "TensorRT engine build failed (see the TensorRT log above)")
    engine = bundle.path / "model.engine"
    write_bytes(engine, bytes(serialized))
    write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    meta = dict(bundle.meta)
    meta["artifacts"] = {**arts, "model": describe_artifact(engine)}
    meta["engine"] = {"tensorrt": trt.__version__, "precision": precision, "dla_core": dla_core,
                      "explicit_quantization": explicit}
    write_bytes(bundle.path / BUNDLE_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    log(f"wrote {engine} (TensorRT {trt.__version__}, {precision}{', DLA ' + str(dla_core) if dla_core is not None else ''})")
    return engine


def _cache_calibrator(trt, cache: Path):
    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        """Implicit INT8 from the exported cache alone: TensorRT never asks for a batch."""

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None

        def read_calibration_cache(self):
            return cache.read_bytes()

        def write_calibration_cache(self, data):
            return None

    calibrator = CacheCalibrator()
    return calibrator


class Session:
    """Runs ``model.engine`` with TensorRT 10 tensor APIs and CUDA buffers from cuda-python."""

    def __init__(self, bundle, device=None, threads=None):
        trt = require("tensorrt", INSTALL, "TensorRT")
        cudart = _cudart()
        path = require_engine(bundle)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise fail(path, "TensorRT cannot deserialize this engine (built for another GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        self.cudart = cudart
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_names = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.buffers = {}
        self.host = {}
        for name in self.names:
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.host[name] = np.empty(shape, dtype)
            err, ptr = cudart.cudaMalloc(self.host[name].nbytes)
            self.buffers[name] = ptr
            self.context.set_tensor_address(name, ptr)
        err, self.stream = cudart.cudaStreamCreate()

    def run(self, x):
        c = self.cudart
        h2d, d2h = c.cudaMemcpyKind.cudaMemcpyHostToDevice, c.cudaMemcpyKind.cudaMemcpyDeviceToHost
        c.cudaMemcpyAsync(self.buffers["images"], x.ctypes.data, x.nbytes, h2d, self.stream)
        self.context.execute_async_v3(self.stream)
        for name in self.output_names:
            out = self.host[name]
            c.cudaMemcpyAsync(out.ctypes.data, self.buffers[name], out.nbytes, d2h, self.stream)
        c.cudaStreamSynchronize(self.stream)
        return {name: self.host[name].astype(np.float32) for name in self.output_names}


def require_engine(bundle) -> Path:
    if "model" not in bundle.meta["artifacts"]:
        raise EdgesegError(f"{bundle.path}: no TensorRT engine yet; build it on the device: edgeseg engine build {bundle.path}")
    return bundle.artifact("model")


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise EdgesegError("running a TensorRT engine needs cuda-python matching the CUDA of JetPack, "
                               "e.g. pip install 'cuda-python==12.6.*' on JetPack 6.1/6.2") from None
    return cudart
