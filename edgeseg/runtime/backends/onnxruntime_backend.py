"""ONNX Runtime (CPU by default; CUDA/TensorRT execution providers with device='cuda'/'tensorrt')."""

from __future__ import annotations

from edgeseg.errors import fail
from edgeseg.runtime.backends import require

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
        try:
            self.session = ort.InferenceSession(str(path), options, providers=PROVIDERS[device])
        except Exception as e:
            raise fail(path, f"ONNX Runtime cannot load the model ({str(e).splitlines()[0][:200]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x) -> dict:
        return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: x})))
