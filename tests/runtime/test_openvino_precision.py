"""edgeseg/runtime/backends/openvino_backend.py: the precision a bundle is computed in, whatever
OpenVINO's own default on the device (bf16 on CPUs that have it)."""

import pytest

from edgeseg.runtime.backends.openvino_backend import _precision_hint


class FakeCore:
    def __init__(self, capabilities):
        self.capabilities = capabilities

    def get_property(self, device, name):
        assert name == "OPTIMIZATION_CAPABILITIES"
        if self.capabilities is None:
            raise RuntimeError(f"{device} does not report {name}")
        return self.capabilities


@pytest.mark.parametrize("precision, capabilities, hint", [
    ("fp32", ["BF16", "FP16", "FP32"], "f32"),  # never bf16 or f16 for an FP32 bundle
    ("int8", ["BF16", "FP32", "INT8"], "f32"),
    ("fp16", ["FP16", "FP32"], "f16"),  # a GPU/NPU, or a CPU with AVX512-FP16
    ("fp16", ["BF16", "FP32", "INT8"], "f32"),  # a bf16 CPU: f16 weights computed in f32, not bf16
    ("fp16", None, "f32"),  # AUTO reports nothing
])
def test_precision_hint(precision, capabilities, hint):
    assert _precision_hint(FakeCore(capabilities), "CPU", precision) == hint
