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
