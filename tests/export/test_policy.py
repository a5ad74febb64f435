"""The INT8 policy's layer selection on an ONNX graph: leading float layers, and convolutions
only for a method whose policy says so (its Linear layers stay float)."""

from __future__ import annotations

import numpy as np

from tests.helpers import require


def _conv_then_linear(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["images", "w1"], ["c1"], name="conv1"),
             helper.make_node("Conv", ["c1", "w2"], ["c2"], name="conv2"),
             helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3"], ["g"], name="linear", transB=1),
             helper.make_node("MatMul", ["g", "g_t"], ["out"], name="activation_matmul"),
             helper.make_node("Transpose", ["g"], ["g_t"], name="t")]
    nodes = nodes[:4] + nodes[5:] + nodes[4:5]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1])],
                              [weight("w1", (4, 3, 1, 1)), weight("w2", (4, 4, 1, 1)), weight("w3", (5, 64))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_convolutions_only_keeps_linear_layers_float(tmp_path):
    require("onnx")
    from edgeseg.export.onnx import quantizable_nodes

    path = _conv_then_linear(tmp_path / "m.onnx")
    assert quantizable_nodes(path, leading=0) == ["conv1", "conv2", "linear"]  # activation MatMul stays float
    assert quantizable_nodes(path, leading=1) == ["conv2", "linear"]
    assert quantizable_nodes(path, leading=0, linear=False) == ["conv1", "conv2"]


def test_adamixer_states_a_convolutions_only_policy():
    from edgeseg.models.registry import get_method

    assert get_method("adamixer").int8.convolutions_only
    assert not get_method("sparseinst").int8.convolutions_only
