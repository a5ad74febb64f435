"""``load_predictor``: an exported bundle (torch-free runtime) or an edgeseg checkpoint (PyTorch),
behind one interface (``prepare``, ``raw``, ``finish``, ``__call__``, ``class_names``, ``kind``)."""

from __future__ import annotations

from pathlib import Path

from edgeseg.errors import fail

TRAIN_EXTRA = "pip install 'edgeseg[train]'"


def load_predictor(model_path, device: str | None = None, threads: int | None = None, score: float | None = None):
    """A predictor for an exported bundle (torch-free) or an edgeseg checkpoint (PyTorch); ``score``
    overrides its deploy threshold."""
    path = Path(model_path)
    if path.is_dir():
        from edgeseg.runtime import Predictor

        return Predictor(path, device=device, threads=threads, score=score)
    if not path.exists():
        raise fail(path, "no such bundle folder or checkpoint")
    from edgeseg.runtime.bundle import BUNDLE_FILE

    if (path.parent / BUNDLE_FILE).is_file():
        raise fail(path, f"a file inside a bundle; give the bundle folder {path.parent} instead")
    try:
        import torch
    except ImportError:
        raise fail(path, f"a PyTorch checkpoint needs the train extra, not installed here: {TRAIN_EXTRA} "
                         "(or give an exported bundle folder)") from None
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.engine.predictor import TorchPredictor

    if threads:
        torch.set_num_threads(threads)
    model, recipe, class_names = load_model(path)
    return TorchPredictor(model, recipe, class_names, score=score)
