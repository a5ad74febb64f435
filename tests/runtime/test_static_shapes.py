"""Dynamic-size bundles switch to a copy fixed to the frame's shape once it repeats (a camera), and
back to the dynamic model for a new shape; outputs are the same either way."""

import numpy as np
import pytest

from edgeseg.runtime.backends import StaticOnceSettled
from tests.helpers import require


def test_static_copy_is_built_once_the_shape_settles_and_dropped_on_a_new_shape():
    built, calls = [], []

    def build(shape):
        built.append(shape)
        return lambda x: calls.append(("static", x.shape)) or "static"

    run = StaticOnceSettled(lambda x: calls.append(("dynamic", x.shape)) or "dynamic", build, settle=3)
    a, b = np.zeros((1, 3, 64, 96)), np.zeros((1, 3, 96, 64))
    assert [run(a) for _ in range(5)] == ["dynamic", "dynamic", "static", "static", "static"]
    assert built == [a.shape]
    assert [run(b), run(a)] == ["dynamic", "dynamic"]  # a new shape goes back at once
    assert [run(a) for _ in range(3)] == ["dynamic", "static", "static"] and built == [a.shape, a.shape]


def test_unbuildable_static_copy_keeps_the_dynamic_model():
    run = StaticOnceSettled(lambda x: "dynamic", lambda shape: None, settle=2)
    assert [run(np.zeros(3)) for _ in range(4)] == ["dynamic"] * 4


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_dynamic_bundle_runs_static_after_settling_with_the_same_outputs(tiny_model, backend, tmp_path):
    require(backend)
    from edgeseg.export import export_bundle
    from edgeseg.runtime import Predictor

    checkpoint, _ = tiny_model
    out = tmp_path / backend
    export_bundle(checkpoint, "onnx" if backend == "onnxruntime" else "openvino", out, imgsz="128",
                  log=lambda *_: None)
    predictor = Predictor(out)
    assert predictor.bundle.dynamic
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 96, 160)).astype(np.float32)
    first = predictor.raw(x)
    for _ in range(3):
        again = predictor.raw(x)
    session_run = predictor.session.run
    assert isinstance(session_run, StaticOnceSettled) and session_run.run_static is not None
    for name in first:
        np.testing.assert_allclose(again[name], first[name], rtol=1e-4, atol=1e-5)
    y = rng.standard_normal((1, 3, 128, 128)).astype(np.float32)
    assert predictor.raw(y)["masks"].shape[-2:] == (32, 32) and session_run.run_static is None
