"""Reading weight files without running code from them.

``torch.load(weights_only=True)`` rebuilds tensors and plain containers only; anything else in
the pickle (a class, a function, a numpy array) is refused with a line that names it, because
unpickling it could execute arbitrary code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from edgeseg.errors import fail


def safe_load(path, what: str = "checkpoint"):
    """The object stored in ``path``, built from tensors and plain Python data only."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, f"{what} not found" if not path.exists() else f"{what} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        needs = found.group(1) if found else "a Python object that is not a tensor or plain data"
        raise fail(path, f"refusing to load this {what}: it needs {needs} to unpickle, which could run "
                         "code; edgeseg reads only tensors and plain data") from None
    except Exception as e:  # torch raises many types for truncated/corrupt files
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise fail(path, f"cannot read {what} ({type(e).__name__}: {first})") from None


def check_finite(state_dict: dict, source) -> None:
    """Refuse weights with NaN/Inf: they export and run but predict nothing."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise fail(source, f"weight {key} holds NaN or Inf values (diverged training or a corrupt file)")


def _short(keys: list[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_strict(model, state_dict: dict, source, what: str = "checkpoint") -> None:
    """Load exactly: missing, unexpected or mis-shaped keys are listed in a one-line error.
    ``num_batches_tracked`` is optional both ways (BatchNorm fills it in, FrozenBN has none)."""
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(own.keys() - given), sorted(given - own.keys())
    shapes = sorted(f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
                    for k in own.keys() & given if tuple(state_dict[k].shape) != tuple(own[k].shape))
    problems = [f"{label}: {_short(keys)}" for label, keys in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch (file vs model)", shapes))
                if keys]
    if problems:
        raise fail(source, f"{what} does not fit this model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=False)  # every key checked above; num_batches_tracked may be absent
