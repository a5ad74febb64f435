"""Run any predictor over a COCO dataset and score it with the official COCO API."""

from __future__ import annotations

from typing import Callable

from edgeseg.data.coco import CocoDataset
from edgeseg.evaluation.coco_eval import evaluate, masks_to_results
from edgeseg.postprocess import Detections


def predict_dataset(predict: Callable[..., Detections], dataset: CocoDataset, progress=None) -> list[dict]:
    results = []
    for i, record in enumerate(dataset.records):
        dets = predict(dataset.load_image(i), name=str(record["file_name"]))
        results += masks_to_results(record["id"], dets.masks, dets.scores, dets.labels, dataset.category_ids)
        if progress:
            progress(i + 1, len(dataset))
    return results


def evaluate_dataset(predict: Callable[..., Detections], dataset: CocoDataset, progress=None) -> dict:
    """Mask AP (12 COCO stats) of ``predict`` on ``dataset``; also returns the raw results."""
    results = predict_dataset(predict, dataset, progress)
    report = evaluate(dataset.json_path, results, iou_type="segm")
    report["results"] = results
    return report
