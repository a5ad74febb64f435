"""Run any predictor over a COCO dataset and score it with the official COCO API, by output kind:
segm and bbox for mask kinds, bbox for boxes; the kind's first evaluation is its primary metric."""

from __future__ import annotations

from typing import Callable

from edgeseg.data.coco import CocoDataset
from edgeseg.evaluation.coco_eval import detections_to_results, evaluate
from edgeseg.postprocess import METRIC_NAMES, Detections, output_kind


def predict_dataset(predict: Callable[..., Detections], dataset: CocoDataset, progress=None) -> list[dict]:
    results = []
    for i, record in enumerate(dataset.records):
        # score=0: evaluation scores every detection over the kind's cls_threshold, not the deploy threshold
        dets = predict(dataset.load_image(i), name=str(record["file_name"]), score=0.0)
        results += detections_to_results(record["id"], dets, dataset.category_ids)
        if progress:
            progress(i + 1, len(dataset))
    return results


def evaluate_dataset(predict: Callable[..., Detections], dataset: CocoDataset, kind: str | None = None,
                     class_agnostic: bool = False, progress=None, boundary: bool = False) -> dict:
    """The primary metric's report (``metric``, ``iou_type``, ``stats``, ``metrics``, ``summary``),
    every evaluation of the kind under ``by_type``, and the raw ``results``.

    ``kind`` defaults to the predictor's own (``predict.kind``); ``class_agnostic`` scores masks
    or boxes whatever their class (COCO ``useCats=0``), as annotation-free training needs;
    ``boundary`` adds boundary AP for a kind with masks (edgeseg/evaluation/boundary.py).
    """
    kind = output_kind(kind or predict.kind.name)
    results = predict_dataset(predict, dataset, progress)
    iou_types = kind.iou_types + (("boundary",) if boundary and kind.masks else ())
    by_type = {t: evaluate(dataset.json_path, results, iou_type=t, use_cats=not class_agnostic) for t in iou_types}
    primary = kind.iou_types[0]
    name = METRIC_NAMES[primary] + (" (class-agnostic)" if class_agnostic else "")
    return {**by_type[primary], "metric": name, "by_type": by_type, "results": results}
