"""LiteRT (ai-edge-litert) with XNNPACK on CPU; ``threads`` sets the interpreter's threads."""

from __future__ import annotations

import os

from edgeseg.errors import fail
from edgeseg.runtime.backends import require


class Session:
    def __init__(self, bundle, device=None, threads=None):
        interpreter = require("ai_edge_litert.interpreter", "ai-edge-litert", "LiteRT")
        if device not in (None, "cpu", "CPU"):
            raise fail(bundle.path, f"LiteRT runs on the CPU here; device '{device}' is not supported")
        path = bundle.artifact("model")
        try:
            self.interpreter = interpreter.Interpreter(str(path), num_threads=threads or os.cpu_count())
            self.interpreter.allocate_tensors()
        except Exception as e:
            raise fail(path, f"LiteRT cannot load the model ({str(e).splitlines()[0][:200]})") from None
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        by_rank = {len(o["shape"]): o["index"] for o in self.interpreter.get_output_details()}
        if sorted(by_rank) != [3, 4]:
            raise fail(path, "expected two outputs: scores [1, N, C] and masks [1, N, H/4, W/4]")
        self.output_indices = [by_rank[3], by_rank[4]]

    def run(self, x):
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        scores, masks = (self.interpreter.get_tensor(i) for i in self.output_indices)
        return scores, masks
