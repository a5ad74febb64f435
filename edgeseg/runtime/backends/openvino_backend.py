"""OpenVINO (device CPU, GPU or NPU). FP32 bundles run with an f32 precision hint: OpenVINO
otherwise picks bf16 on CPUs that support it, which is not what an FP32 bundle promises."""

from __future__ import annotations

from edgeseg.errors import fail
from edgeseg.runtime.backends import StaticOnceSettled, require


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
        self.ov, self.core, self.path, self.device, self.config = ov, core, path, device, config
        try:
            self.model = core.read_model(str(path))
        except Exception as e:
            raise fail(path, f"OpenVINO cannot load the model ({str(e).splitlines()[0][:200]})") from None
        run = self._compile(self.model)
        self.run = StaticOnceSettled(run, self._static) if self.model.inputs[0].partial_shape.is_dynamic else run

    def _compile(self, model):
        try:
            compiled = self.core.compile_model(model, self.device, self.config)
        except Exception as e:
            raise fail(self.path, f"OpenVINO cannot load the model ({str(e).splitlines()[0][:200]})") from None
        request = compiled.create_infer_request()
        outputs = [(output.get_any_name(), output) for output in compiled.outputs]

        def run(x) -> dict:
            result = request.infer({0: x})
            return {name: result[output] for name, output in outputs}
        return run

    def _static(self, shape: tuple[int, ...]):
        """The model reshaped to ``shape`` and compiled again (what ``benchmark_app -shape`` runs)."""
        model = self.model.clone()
        model.reshape({model.inputs[0]: self.ov.PartialShape(list(shape))})
        return self._compile(model)
