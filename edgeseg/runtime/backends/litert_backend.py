"""LiteRT (ai-edge-litert) with XNNPACK on CPU; ``threads`` sets the interpreter's threads."""

from __future__ import annotations

import contextlib
import os
import sys

from edgeseg.errors import fail
from edgeseg.runtime.backends import require
from edgeseg.runtime.bundle import BUNDLE_FILE


@contextlib.contextmanager
def quiet_stderr():
    """LiteRT's C++ writes "INFO: Created TensorFlow Lite XNNPACK delegate" to file descriptor 2,
    beside the one line an error is meant to be; its load errors reach us as exceptions anyway."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Session:
    def __init__(self, bundle, device=None, threads=None):
        interpreter = require("ai_edge_litert.interpreter", "pip install ai-edge-litert", "LiteRT")
        if device not in (None, "cpu", "CPU"):
            raise fail(bundle.path, f"LiteRT runs on the CPU here; device '{device}' is not supported")
        path = bundle.artifact("model")
        try:
            with quiet_stderr():
                self.interpreter = interpreter.Interpreter(str(path), num_threads=threads or os.cpu_count())
                self.interpreter.allocate_tensors()
        except Exception as e:
            raise fail(path, f"LiteRT cannot load the model ({str(e).splitlines()[0][:200]})") from None
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        shape = [int(d) for d in inp["shape"]]
        hw = tuple(shape[1:3] if bundle.input.get("layout", "NCHW") == "NHWC" else shape[2:4])
        if not bundle.dynamic and hw != bundle.input_hw:
            raise fail(bundle.path / BUNDLE_FILE, f"says the input is {bundle.input_hw[0]}x{bundle.input_hw[1]}, "
                                                  f"but {path.name} takes {shape}")
        self.outputs = [(o["name"], o["index"]) for o in self.interpreter.get_output_details()]

    def run(self, x) -> dict:
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs}
