"""OpenVINO (device CPU, GPU or NPU). FP32 bundles run with an f32 precision hint: OpenVINO
otherwise picks bf16 on CPUs that support it, which is not what an FP32 bundle promises."""

from __future__ import annotations

from edgeseg.errors import fail
from edgeseg.runtime.backends import require


class Session:
    def __init__(self, bundle, device=None, threads=None):
        ov = require("openvino", "pip install openvino", "OpenVINO")
        path = bundle.artifact("model")
        config = {}
        if bundle.meta["precision"] in ("fp32", "int8"):
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        device = (device or "CPU").upper()
        core = ov.Core()
        if device not in core.available_devices and device != "AUTO":
            raise fail(bundle.path, f"OpenVINO device {device} not available here (have: {', '.join(core.available_devices)})")
        try:
            self.compiled = core.compile_model(str(path), device, config)
        except Exception as e:
            raise fail(path, f"OpenVINO cannot load the model ({str(e).splitlines()[0][:200]})") from None
        self.request = self.compiled.create_infer_request()
        self.outputs = [(output.get_any_name(), output) for output in self.compiled.outputs]

    def run(self, x) -> dict:
        result = self.request.infer({0: x})
        return {name: result[output] for name, output in self.outputs}
