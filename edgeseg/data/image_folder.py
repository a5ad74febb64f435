"""A folder of plain images without annotations (supervision "none"), and the choice between it
and a COCO dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.data.coco import ANNOTATIONS_FILE, IMAGES_DIR, CocoDataset
from edgeseg.data.images import read_image_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def find_images(root: Path) -> list[Path]:
    """Image files under ``root`` (sub-folders included), sorted so the order is reproducible."""
    return sorted(p.absolute() for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ImageFolder:
    """The reader interface of :class:`CocoDataset` for images alone: no classes, no instances."""

    supervision = "none"
    gives = ("none",)
    supervision_note = ""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.source = Path(folder)
        self.class_names: list[str] = []
        self.category_ids: list[int] = []
        images = self.source / IMAGES_DIR
        self.image_root = images if images.is_dir() else self.source
        self.records: list[dict[str, Any]] = [
            {"id": k + 1, "file_name": p} for k, p in enumerate(find_images(self.image_root))]

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, i: int) -> np.ndarray:
        return read_image_rgb(self.records[i]["file_name"])

    def load_instances(self, i: int) -> dict[str, np.ndarray]:
        return {"labels": np.zeros((0,), np.int64)}


def open_dataset(spec: str | os.PathLike) -> CocoDataset | ImageFolder:
    """A COCO dataset, or a plain image folder when ``spec`` is a folder of images without
    ``annotations.json`` (anything else gets CocoDataset's error)."""
    path = Path(spec)
    if path.is_dir() and not (path / ANNOTATIONS_FILE).exists():
        folder = ImageFolder(path)
        if len(folder):
            return folder
    return CocoDataset(path)
