"""How good pseudo-labels are: a pseudo-label file (a COCO JSON whose annotations carry scores)
scored as detections against a masks dataset of the same images, class-agnostically (COCO
``useCats=0``): annotation-free masks have no classes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgeseg.data.coco import CocoDataset
from edgeseg.data.masks import decode_segmentation
from edgeseg.errors import fail
from edgeseg.evaluation.coco_eval import evaluate, masks_to_results


def pseudo_label_results(pseudo: str | os.PathLike, gt: CocoDataset) -> list[dict]:
    """The annotations of ``pseudo`` as COCO results on ``gt``'s images (matched by image id, which
    ``edgeseg freemask`` keeps from a COCO source)."""
    data = json.loads(Path(pseudo).read_text(encoding="utf-8"))
    sizes = {r["id"]: (r["height"], r["width"]) for r in gt.records}
    first = gt.category_ids[0]
    results = []
    for ann in data.get("annotations", []):
        if ann["image_id"] not in sizes:
            raise fail(pseudo, f"image_id {ann['image_id']} is not an image of {gt.json_path}")
        if "score" not in ann:
            raise fail(pseudo, f"annotation {ann.get('id')} has no 'score' (pseudo-labels carry one)")
        h, w = sizes[ann["image_id"]]
        mask = decode_segmentation(ann["segmentation"], h, w)[None]
        results += masks_to_results(ann["image_id"], mask, [ann["score"]], [0], [first])
    return results


def pseudo_label_ap(pseudo: str | os.PathLike, gt_source: str | os.PathLike) -> dict:
    """Class-agnostic mask AP report (``stats``, ``AP``, ``AP50``, ...) of ``pseudo`` against ``gt_source``."""
    gt = CocoDataset(gt_source)
    return evaluate(gt.json_path, pseudo_label_results(pseudo, gt), iou_type="segm", use_cats=False, quiet=True)


__all__ = ["pseudo_label_ap", "pseudo_label_results"]
