"""Writing COCO dataset folders atomically (the format :class:`CocoDataset` reads)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.data.coco import ANNOTATIONS_FILE, IMAGES_DIR
from edgeseg.data.masks import mask_to_bbox, mask_to_segmentation
from edgeseg.errors import EdgesegError
from edgeseg.io import atomic_path


WRITER_MARK = "written by edgeseg"


def written_by_edgeseg(folder: Path) -> bool:
    """A dataset folder that edgeseg wrote (and may therefore replace)."""
    try:
        with open(folder / ANNOTATIONS_FILE, encoding="utf-8") as f:
            head = f.read(256)
    except OSError:
        return False
    return f'"description":"{WRITER_MARK}"' in head


class CocoWriter:
    """Stream images and instances into a dataset folder that appears atomically on :meth:`close`.

    Use as a context manager; on an exception nothing is left behind.
    """

    def __init__(self, out_dir: str | os.PathLike, class_names: Sequence[str]) -> None:
        self._atomic = atomic_path(out_dir, written_by_edgeseg, "dataset written by edgeseg")
        self._root = self._atomic.__enter__()
        (self._root / IMAGES_DIR).mkdir(parents=True)
        self._data: dict[str, Any] = {
            "info": {"description": WRITER_MARK},
            "images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(class_names)],
        }
        self._num_classes = len(class_names)

    def add(self, file_name: str, image: np.ndarray, instances: Sequence[tuple[np.ndarray, int]]) -> None:
        """Add an RGB uint8 image (saved as ``images/<file_name>``) and its (mask, class index) pairs."""
        h, w = image.shape[:2]
        path = self._root / IMAGES_DIR / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = image[:, :, ::-1] if image.ndim == 3 else image
        ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(bgr))
        if not ok:
            raise EdgesegError(f"{file_name}: cannot encode image")
        path.write_bytes(buf.tobytes())
        image_id = len(self._data["images"]) + 1
        self._data["images"].append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        anns = self._data["annotations"]
        for mask, label in instances:
            if mask.shape != (h, w) or not 0 <= label < self._num_classes:
                raise ValueError(f"{file_name}: bad mask shape {mask.shape} or class index {label}")
            area = int(np.count_nonzero(mask))
            if area == 0:
                continue
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(label) + 1,
                         "segmentation": mask_to_segmentation(mask), "area": area,
                         "bbox": mask_to_bbox(mask), "iscrowd": 0})

    def close(self) -> None:
        with open(self._root / ANNOTATIONS_FILE, "w", encoding="utf-8") as f:
            json.dump(self._data, f, separators=(",", ":"))
        self._atomic.__exit__(None, None, None)

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._atomic.__exit__(exc_type, exc, tb)


def write_coco(out_dir: str | os.PathLike, images: Sequence[tuple[str, np.ndarray]],
               annotations: Sequence[Sequence[tuple[np.ndarray, int]]], class_names: Sequence[str]) -> None:
    """Write a dataset folder atomically: PNG/JPEG images + polygon (or RLE) annotations.

    ``images`` holds ``(file_name, RGB uint8 image)``; ``annotations[i]`` holds ``(mask, class index)``
    pairs for image i; categories get ids ``1..K`` in ``class_names`` order.
    """
    if len(images) != len(annotations):
        raise ValueError(f"{len(images)} images but {len(annotations)} annotation lists")
    with CocoWriter(out_dir, class_names) as writer:
        for (name, image), instances in zip(images, annotations):
            writer.add(name, image, instances)
