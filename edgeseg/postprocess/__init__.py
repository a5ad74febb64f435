"""The one postprocessing per output kind, shared by PyTorch evaluation and every runtime
(torch-free).

A network's outputs arrive as a dict keyed by output name. ``OUTPUT_KINDS`` says, per kind,
which names the graph returns, which function turns them into :class:`Detections`, and which
COCO evaluations apply (the first is the kind's primary metric). Bench, demo, the export gate
and evaluation call :func:`postprocess` and never look inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgeseg.errors import EdgesegError
from edgeseg.postprocess import boxes, query_masks, roi_masks
from edgeseg.postprocess.detections import Detections, sigmoid


@dataclass(frozen=True)
class OutputKind:
    name: str
    outputs: tuple[str, ...]  # the graph's output names, in order
    run: Callable[..., Detections]  # (outputs by name, ImageMeta, **thresholds) -> Detections
    iou_types: tuple[str, ...]  # COCO evaluations; the first is the primary metric
    masks: bool  # whether Detections carry masks


OUTPUT_KINDS = {
    "query_masks": OutputKind("query_masks", query_masks.OUTPUTS, query_masks.postprocess, ("segm", "bbox"), True),
    "boxes": OutputKind("boxes", boxes.OUTPUTS, boxes.postprocess, ("bbox",), False),
    "roi_masks": OutputKind("roi_masks", roi_masks.OUTPUTS, roi_masks.postprocess, ("segm", "bbox"), True),
}
METRIC_NAMES = {"segm": "mask AP", "bbox": "box AP", "boundary": "boundary AP"}
THRESHOLDS = ("cls_threshold", "mask_threshold", "max_detections", "score_threshold")
# The deploy threshold of bundles and checkpoints that do not name one: what predict, demo and bench
# show. Evaluation keeps every detection over ``cls_threshold`` (``score=0``).
DEPLOY_SCORE = 0.3


def output_kind(name: str) -> OutputKind:
    if name not in OUTPUT_KINDS:
        raise EdgesegError(f"unknown output kind '{name}'; this edgeseg knows {', '.join(OUTPUT_KINDS)}")
    return OUTPUT_KINDS[name]


def primary_metric(kind: str) -> str:
    """The name of a kind's primary metric as every table prints it, e.g. 'mask AP'."""
    return METRIC_NAMES[output_kind(kind).iou_types[0]]


def check_score(score: float) -> float:
    if not 0.0 <= score <= 1.0:
        raise EdgesegError(f"--score must be in [0, 1], got {score}")
    return float(score)


def postprocess(kind: str, outputs: dict, meta, thresholds: dict, score: float | None = None) -> Detections:
    """Network outputs (batch item, by name) -> Detections in original image pixels.

    ``score`` (else ``thresholds["score_threshold"]``, else none) is the deploy threshold: every
    kind drops detections under it before any work at the original image size."""
    chosen = {k: thresholds[k] for k in THRESHOLDS if k in thresholds}
    if score is not None:
        chosen["score_threshold"] = score
    return output_kind(kind).run(outputs, meta, **chosen)


__all__ = ["DEPLOY_SCORE", "Detections", "check_score", "OUTPUT_KINDS", "OutputKind", "output_kind", "postprocess", "primary_metric", "sigmoid",
           "METRIC_NAMES"]
