"""Datasets: strict COCO loading/writing, plain image folders and the built-in datasets (shapes, packaged).

Torch-free on purpose: shared with the device runtime (numpy, OpenCV and pycocotools only).
"""

from edgeseg.data.coco import CocoDataset, resolve_dataset
from edgeseg.data.coco_writer import CocoWriter, write_coco
from edgeseg.data.image_folder import ImageFolder, open_dataset
from edgeseg.data.masks import mask_to_bbox, mask_to_rle, rle_area
from edgeseg.data.packaged import write_nuclei, write_voc
from edgeseg.data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from edgeseg.data.shapes import generate_shapes

__all__ = [
    "CocoDataset",
    "CocoWriter",
    "ImageFolder",
    "SHAPES_CLASS_NAMES",
    "generate_shapes",
    "mask_to_bbox",
    "mask_to_rle",
    "open_dataset",
    "resolve_dataset",
    "rle_area",
    "write_coco",
    "write_nuclei",
    "write_voc",
]
