"""ONNX Runtime (CPU by default; CUDA/TensorRT execution providers with device='cuda'/'tensorrt')."""

from __future__ import annotations

from edgeseg.errors import fail
from edgeseg.runtime.backends import StaticOnceSettled, require

PROVIDERS = {
    None: ["CPUExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class Session:
    def __init__(self, bundle, device=None, threads=None):
        ort = require("onnxruntime", "pip install onnxruntime", "ONNX Runtime")
        # Jetson bundles carry ONNX for TensorRT: ONNX Runtime can run it for checks off-device.
        role = "model" if bundle.backend == "onnxruntime" else ("qdq" if "qdq" in bundle.meta["artifacts"] else "onnx")
        path = bundle.artifact(role)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle worker threads would otherwise spin after each run and starve whatever runs next on
        # a small board (capture/render threads, another model in an interleaved benchmark).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if device not in PROVIDERS:
            raise fail(bundle.path, f"unknown ONNX Runtime device '{device}'; valid: cpu, cuda, tensorrt")
        self.ort, self.path, self.options, self.providers = ort, path, options, PROVIDERS[device]
        self.session = self._open()
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.symbols = self.session.get_inputs()[0].shape  # ints, or names of free dimensions
        dynamic = any(isinstance(d, str) for d in self.symbols)
        self.run = StaticOnceSettled(self._runner(self.session), self._static) if dynamic else self._runner(self.session)

    def _open(self, options=None):
        try:
            return self.ort.InferenceSession(str(self.path), options or self.options, providers=self.providers)
        except Exception as e:
            raise fail(self.path, f"ONNX Runtime cannot load the model ({str(e).splitlines()[0][:200]})") from None

    def _runner(self, session):
        def run(x) -> dict:
            return dict(zip(self.output_names, session.run(self.output_names, {self.input_name: x})))
        return run

    def _static(self, shape: tuple[int, ...]):
        """A session with the free dimensions fixed to ``shape`` (ONNX Runtime then plans memory once)."""
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = self.options.intra_op_num_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for symbol, value in zip(self.symbols, shape):
            if isinstance(symbol, str):
                options.add_free_dimension_override_by_name(symbol, int(value))
        return self._runner(self._open(options))
