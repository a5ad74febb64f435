"""The pseudo-label file every round writes: a COCO JSON of class "object" whose annotations
carry a ``score``, with the source's image ids (so that a labelled source can score it) and image
file names relative to the file's folder (so that training reads it where it lies)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeseg.data.image_folder import open_dataset
from edgeseg.data.masks import mask_to_bbox, mask_to_segmentation
from edgeseg.errors import fail
from edgeseg.io import check_output, write_json

CATEGORY = {"id": 1, "name": "object", "supercategory": ""}


class PseudoLabels:
    """Open ``source`` (an image folder, or a COCO dataset whose annotations are not read) and
    collect masks for ``out``; nothing is written before :meth:`write`, and then atomically."""

    def __init__(self, source, out, what: str):
        self.out = check_output(out, what)
        if self.out.suffix != ".json":
            raise fail(self.out, f"expected a .json file name for the {what}")
        self.dataset = open_dataset(source)
        json_path = getattr(self.dataset, "json_path", None)
        if json_path is not None and self.out.resolve() == json_path.resolve():
            raise fail(self.out, "is the source's annotation file; choose another name (its masks would be lost)")
        self._root = self.out.absolute().parent
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def __iter__(self):
        """(record, RGB image) of every source image, in order."""
        for i, rec in enumerate(self.dataset.records):
            yield rec, self.dataset.load_image(i)

    def add(self, rec: dict, image_hw: tuple[int, int], masks: np.ndarray, scores) -> None:
        h, w = image_hw
        self.images.append({"id": rec["id"], "file_name": Path(os.path.relpath(rec["file_name"], self._root)).as_posix(),
                            "height": h, "width": w})
        for mask, score in zip(masks, scores):
            if mask.any():
                self.annotations.append({"id": len(self.annotations) + 1, "image_id": rec["id"], "category_id": 1,
                                         "segmentation": mask_to_segmentation(mask), "area": int(mask.sum()),
                                         "bbox": mask_to_bbox(mask), "iscrowd": 0, "score": float(score)})

    def keep_scored(self, score: float) -> None:
        """Drop the masks scored under ``score`` (the images stay: an empty image is a label too)."""
        kept = [a for a in self.annotations if a["score"] >= score]
        self.annotations = [{**a, "id": k + 1} for k, a in enumerate(kept)]

    def write(self, description: str, settings: dict) -> dict:
        write_json(self.out, {"info": {"description": description, "edgeseg_pseudo_labels": settings},
                              "images": self.images, "annotations": self.annotations, "categories": [CATEGORY]},
                   indent=None)
        return {"images": len(self.images), "masks": len(self.annotations)}
