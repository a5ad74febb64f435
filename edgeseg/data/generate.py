"""Build the datasets a recipe names when they are not on disk yet."""

from __future__ import annotations

from pathlib import Path

from edgeseg.config import DataConfig
from edgeseg.errors import EdgesegError

SHAPES_STYLES = {"shapes": "solid", "thin_shapes": "thin", "textured_shapes": "textured"}  # data.generate -> style


def ensure_dataset(cfg: DataConfig) -> None:
    """If ``cfg.generate`` is set and the train folder is missing, write train/ and val/."""
    train = Path(cfg.train)
    if not cfg.generate or train.exists():
        return
    root = train.parent
    if cfg.val and Path(cfg.val).parent != root:
        raise EdgesegError(f"data.generate needs data.train and data.val in one folder, got {cfg.train} and {cfg.val}")
    if cfg.generate in SHAPES_STYLES:
        from edgeseg.data.shapes import generate_shapes

        generate_shapes(root, style=SHAPES_STYLES[cfg.generate])
    elif cfg.generate == "nuclei":
        from edgeseg.data.packaged import write_nuclei

        write_nuclei(root)
    elif cfg.generate == "voc":
        from edgeseg.data.packaged import write_voc

        write_voc(root)
    else:
        raise EdgesegError(f"data.generate: unknown dataset '{cfg.generate}'; valid: {', '.join(SHAPES_STYLES)}, nuclei, voc")
