"""Evaluation: official COCO metrics (pycocotools COCOeval) and result-file helpers.

Torch-free: shared with the device runtime (numpy, OpenCV, pycocotools only).
"""

from edgeseg.evaluation.coco_eval import (
    STAT_NAMES,
    evaluate,
    format_table,
    detections_to_results,
    load_results,
    masks_to_results,
    save_results,
)

__all__ = ["STAT_NAMES", "detections_to_results", "evaluate", "format_table", "load_results", "masks_to_results", "save_results"]
