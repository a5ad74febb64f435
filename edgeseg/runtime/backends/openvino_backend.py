"""OpenVINO (device CPU, GPU or NPU). OpenVINO computes in bf16 on CPUs that support it unless told
otherwise, which is not what a bundle promises: FP32 and INT8 bundles run with an f32 precision
hint, FP16 bundles with f16 where the device computes in f16 (GPU, NPU, CPUs with AVX512-FP16) and
f32 elsewhere -- bf16 keeps 8 mantissa bits to f16's 11 and moved the test model's scores by 0.03
where f16 weights computed in f32 moved them by 0.002."""

from __future__ import annotations

from edgeseg.errors import fail
from edgeseg.runtime.backends import StaticOnceSettled, require


class Session:
    def __init__(self, bundle, device=None, threads=None):
        ov = require("openvino", "pip install openvino", "OpenVINO")
        path = bundle.artifact("model")
        device = (device or "CPU").upper()
        core = ov.Core()
        if device not in core.available_devices and device != "AUTO":
            raise fail(bundle.path, f"OpenVINO device {device} not available here (have: {', '.join(core.available_devices)})")
        config = {"INFERENCE_PRECISION_HINT": _precision_hint(core, device, bundle.meta["precision"])}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
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


def _precision_hint(core, device: str, precision: str) -> str:
    if precision != "fp16":
        return "f32"
    try:
        capabilities = core.get_property(device, "OPTIMIZATION_CAPABILITIES")
    except Exception:  # AUTO and some plugins do not report it: f32 is right everywhere
        return "f32"
    return "f16" if "FP16" in capabilities else "f32"
