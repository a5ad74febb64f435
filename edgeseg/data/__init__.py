"""Datasets: strict COCO loading/writing and the built-in datasets (synthetic shapes, packaged).

Torch-free on purpose: shared with the device runtime (numpy, OpenCV and pycocotools only).
"""

from edgeseg.data.coco import (
    CocoDataset,
    CocoWriter,
    mask_to_bbox,
    mask_to_rle,
    resolve_dataset,
    rle_area,
    write_coco,
)
from edgeseg.data.packaged import write_nuclei, write_voc
from edgeseg.data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from edgeseg.data.shapes import generate_shapes

__all__ = [
    "CocoDataset",
    "CocoWriter",
    "SHAPES_CLASS_NAMES",
    "generate_shapes",
    "mask_to_bbox",
    "mask_to_rle",
    "resolve_dataset",
    "rle_area",
    "write_coco",
    "write_nuclei",
    "write_voc",
]
