"""Calibration sets for INT8: a manifest of images (one path per line, or a folder), or a COCO
dataset folder with an optional count. Images go through the bundle's own preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.data.images import read_image_rgb
from edgeseg.errors import fail
from edgeseg.preprocess import preprocess
from edgeseg.resources import is_packaged, resource_dir

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
RECOMMENDED_IMAGES = 100
# The repo's calibration/ in a checkout, the wheel's copy otherwise (edgeseg/resources.py).
CALIBRATION_DIR = resource_dir("calibration")


@dataclass
class CalibrationSet:
    source: str
    images: list[Path]

    def summary(self) -> dict:
        return {"source": self.source, "images": len(self.images), "recommended": RECOMMENDED_IMAGES}


def _from_manifest(path: Path) -> list[Path]:
    """Relative paths in a manifest of your own are relative to the manifest; in one edgeseg ships
    (CALIBRATION_DIR, also inside an installed wheel) they are relative to the current directory,
    where ``edgeseg data shapes`` and the quickstart write ``data/shapes``."""
    base = Path.cwd() if is_packaged(path, "calibration") else path.parent
    entries = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [(base / e).resolve() for e in entries if e]


def resolve_calibration(source: str, count: int | None = None, warn=print) -> CalibrationSet:
    """``source``: a manifest (.txt), an image folder, a COCO dataset (folder or JSON), or the name
    of a manifest in ``calibration/`` (e.g. ``shapes``). ``dataset:N`` limits to N images."""
    spec, _, n = str(source).partition(":") if not Path(source).exists() else (str(source), "", "")
    count = int(n) if n.isdigit() else count
    path = Path(spec)
    if not path.exists() and (CALIBRATION_DIR / f"{spec}.txt").is_file():
        path = CALIBRATION_DIR / f"{spec}.txt"
    if not path.exists():
        raise fail(spec, "calibration set not found (a manifest .txt, an image folder or a COCO dataset)")
    if path.is_file() and path.suffix == ".txt":
        images = _from_manifest(path)
    elif path.is_dir() and (path / "annotations.json").is_file() or path.suffix == ".json":
        from edgeseg.data.coco import CocoDataset

        images = [r["file_name"] for r in CocoDataset(path).records]
    elif path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise fail(path, "not a calibration set (a manifest .txt, an image folder or a COCO dataset)")
    if count:
        images = images[:count]
    if not images:
        raise fail(path, "calibration set is empty: INT8 needs images to calibrate on")
    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        raise fail(missing[0], f"calibration image missing ({len(missing)} of {len(images)} missing)")
    if len(images) < RECOMMENDED_IMAGES:
        warn(f"warning: {len(images)} calibration images; {RECOMMENDED_IMAGES}+ recommended (calibration/README.md)")
    return CalibrationSet(str(path), [Path(p) for p in images])


def calibration_inputs(calib: CalibrationSet, input_hw, layout="NCHW"):
    """Yield preprocessed network inputs; an unreadable image is a one-line error naming it."""
    for path in calib.images:
        image = read_image_rgb(path)  # one-line EdgesegError naming the file if unreadable
        x, _ = preprocess(image, input_hw=tuple(input_hw), layout=layout, name=str(path))
        yield x.astype(np.float32)
