"""Inference backends; each module has a ``Session(bundle, device, threads)`` with ``run(x)``.

Each one imports its runtime lazily so a device needs only the one it uses.
"""

import importlib

from edgeseg.errors import EdgesegError


def require(module: str, install: str, backend: str):
    """Import a runtime or fail with how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EdgesegError(f"this bundle needs {backend}, which is not installed here; {install}") from None


class StaticOnceSettled:
    """Runs a dynamic-size model through a copy fixed to the input's shape once that shape has
    repeated ``settle`` times in a row.

    A camera delivers one frame size, and ONNX Runtime and OpenVINO run a graph with static
    shapes faster (1.06x and 1.08-1.19x measured on the quickstart model). Data sets of mixed
    sizes never settle and keep the dynamic model; a new shape goes back to it at once.
    ``build_static(shape)`` returns a ``run(x)`` for that shape, or None when it cannot.
    """

    def __init__(self, run_dynamic, build_static, settle: int = 3):
        self.run_dynamic, self.build_static, self.settle = run_dynamic, build_static, settle
        self.shape, self.repeats, self.run_static = None, 0, None

    def __call__(self, x) -> dict:
        if x.shape == self.shape:
            self.repeats += 1
        else:
            self.shape, self.repeats, self.run_static = x.shape, 1, None
        if self.run_static is None and self.repeats == self.settle:
            self.run_static = self.build_static(tuple(x.shape))
        return (self.run_static or self.run_dynamic)(x)
