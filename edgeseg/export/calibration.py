"""Calibration sets for INT8: a manifest of images (one path per line, or a folder), or a COCO
dataset folder with an optional count. Images go through the bundle's own preprocessing.

Every INT8 exporter streams the set: images are read and preprocessed one at a time, and the
statistics (histograms, min/max) are merged chunk by chunk, so peak memory does not grow with the
number of calibration images (issue 15). Nothing here returns the whole set as a list.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.data.images import read_image_rgb
from edgeseg.errors import fail
from edgeseg.preprocess import preprocess
from edgeseg.resources import is_packaged, resource_dir

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
RECOMMENDED_IMAGES = 100
DEFAULT_IMAGES = 2 * RECOMMENDED_IMAGES  # taken from a training set when no --calib is given
# Beyond this, more images rarely move the ranges but every one is read and run: a training folder
# of 2000 images took 10 minutes where 100 took 30 s.
ENOUGH_IMAGES = 500
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
    elif len(images) > ENOUGH_IMAGES:
        warn(f"warning: calibrating on all {len(images)} images of {path}; {RECOMMENDED_IMAGES}-{ENOUGH_IMAGES} "
             f"give the same ranges in a fraction of the time: --calib {spec}:{DEFAULT_IMAGES}")
    return CalibrationSet(str(path), [Path(p) for p in images])


def calibration_inputs(calib: CalibrationSet, input_hw, layout="NCHW", start: int = 0, end: int | None = None):
    """Yield preprocessed network inputs of images [start, end), one at a time (a generator: never
    the whole set in memory); an unreadable image is a one-line error naming it."""
    for path in calib.images[start:end]:
        image = read_image_rgb(path)  # one-line EdgesegError naming the file if unreadable
        x, _ = preprocess(image, input_hw=tuple(input_hw), layout=layout, name=str(path))
        yield x.astype(np.float32)


def chunk_bounds(count: int, size: int):
    """[start, end) of consecutive chunks of at most ``size`` of ``count`` images."""
    return [(i, min(i + size, count)) for i in range(0, count, max(1, size))]


class CalibrationInputs:
    """The preprocessed inputs of a calibration set as a sized, re-iterable dataset: every pass
    reads the images again, one at a time (NNCF iterates its dataset once per statistics pass;
    a generator would be empty on the second pass, a list would hold the whole set)."""

    def __init__(self, calib: CalibrationSet, input_hw, layout="NCHW", start: int = 0, end: int | None = None):
        self.calib, self.input_hw, self.layout = calib, input_hw, layout
        self.start, self.end = start, len(calib.images) if end is None else min(end, len(calib.images))

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        return calibration_inputs(self.calib, self.input_hw, self.layout, self.start, self.end)


def release_memory() -> None:
    """Hand freed heap memory back to the OS between export stages. A converter (torch.export,
    shape inference) leaves hundreds of MB freed but still resident in glibc's heap (R-50 at 608:
    1.3 GB resident after the ONNX export, 0.75 GB after this), which the calibration that follows
    would otherwise stack its own peak on. A no-op where there is no glibc."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # musl or another libc: nothing to trim
            pass
