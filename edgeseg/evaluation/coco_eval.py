"""COCO instance-segmentation / box evaluation with the official pycocotools COCOeval.

Image set: like the official COCO API, every image id of the ground truth is evaluated
(``COCOeval.params.imgIds`` is left at its default), so ground-truth objects on images without
any detection count as misses. This reproduces the reference numbers of the golden set exactly;
restricting ``imgIds`` to the images that have results (as some scripts do) inflates AP.

For ``segm`` the ``bbox`` of each result is dropped before ``loadRes``: when it is present
pycocotools takes the box area as the detection area, which changes what counts as a
small/medium/large detection for mask AP.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edgeseg.data.coco import annotation_problem
from edgeseg.evaluation.boundary import BoundaryEval
from edgeseg.errors import EdgesegError, fail
from edgeseg.io import write_json

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

# (is_ap, iou_thr or None for 0.50:0.95, area label, max_dets) per entry of COCOeval.stats.
_STAT_LINES = (
    (True, None, "all", 100),
    (True, 0.5, "all", 100),
    (True, 0.75, "all", 100),
    (True, None, "small", 100),
    (True, None, "medium", 100),
    (True, None, "large", 100),
    (False, None, "all", 1),
    (False, None, "all", 10),
    (False, None, "all", 100),
    (False, None, "small", 100),
    (False, None, "medium", 100),
    (False, None, "large", 100),
)
# "boundary": boundary AP (edgeseg/evaluation/boundary.py), from the same masks as "segm"
_REQUIRED_KEY = {"segm": "segmentation", "bbox": "bbox", "boundary": "segmentation"}

Results = list[dict[str, Any]]


def _read_json(path: str | os.PathLike, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise fail(path, f"{what} file not found") from None
    except json.JSONDecodeError as e:
        raise fail(path, f"{what} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise fail(path, f"cannot read {what} ({e})") from None


def load_results(path: str | os.PathLike) -> Results:
    """Load a COCO results JSON (a list of result dicts)."""
    data = _read_json(path, "results")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise fail(path, "expected a JSON list of COCO result objects")
    return data


def save_results(path: str | os.PathLike, results: Results) -> None:
    """Write COCO results atomically as compact JSON."""
    write_json(path, list(results), indent=None)


def _load_gt(gt: str | os.PathLike | COCO | dict, iou_type: str = "segm") -> COCO:
    if isinstance(gt, COCO):
        return gt
    source = "ground truth" if isinstance(gt, dict) else gt
    data = gt if isinstance(gt, dict) else _read_json(gt, "ground truth")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise fail(source, "not a COCO annotation file (needs images, annotations, categories lists)")
    _check_annotations(data, source, _REQUIRED_KEY[iou_type])
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    return coco


def _check_annotations(data: dict, source: Any, needed: str) -> None:
    """Every ground-truth field pycocotools uses is checked first (types, ids, and every number:
    see annotation_problem); a set without annotations has nothing to evaluate (COCOeval would
    print AP -1)."""
    sizes = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not all(_is_int(im.get(key)) for key in ("id", "height", "width")):
            raise fail(source, f"image entry {k} needs integer 'id', 'height' and 'width'")
        sizes[im["id"]] = (im["height"], im["width"])
    if not all(isinstance(c, dict) and _is_int(c.get("id")) for c in data["categories"]):
        raise fail(source, "every category needs an integer 'id'")
    ids = set()
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")) or ann["id"] in ids:
            raise fail(source, f"annotation entry {k} needs a unique integer 'id'")
        ids.add(ann["id"])
        if needed not in ann or not _is_int(ann.get("category_id")) or ann.get("image_id") not in sizes:
            raise fail(source, f"annotation {ann['id']} needs '{needed}', an integer 'category_id' and "
                               "the 'image_id' of an image")
        problem = annotation_problem(ann, *sizes[ann["image_id"]])
        for key in ("area", "iscrowd"):
            if key not in ann:
                problem = f"no '{key}' (pycocotools needs it)"
        if ann.get("segmentation") == [] and needed == "segmentation":
            problem = "empty segmentation: pycocotools cannot evaluate it; remove the annotation or give it a mask"
        if problem:
            raise fail(source, f"annotation {ann['id']}: {problem}")
    if not any(not ann.get("iscrowd", 0) for ann in data["annotations"]):
        raise fail(source, "has no (non-crowd) annotations: there is nothing to evaluate against")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_results(results: Results, gt: COCO, iou_type: str, source: Any) -> Results:
    """Validate results against the ground truth; return shallow copies safe for loadRes to mutate."""
    key = _REQUIRED_KEY[iou_type]
    checked: Results = []
    unknown: dict[str, None] = {}  # ordered set of the offending ids, as printed
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise fail(source, f"result {i} is not an object")
        for k in ("image_id", "category_id", "score", key):
            if k not in r:
                raise fail(source, f"result {i} has no {k!r} (needed for {iou_type} evaluation)")
        if key == "segmentation" and not isinstance(r["segmentation"], dict):
            raise fail(source, f"result {i}: 'segmentation' must be RLE (a dict with size and counts)")
        image_id = r["image_id"]
        if not isinstance(image_id, (int, np.integer)):
            unknown[repr(image_id)] = None
        elif image_id not in gt.imgs:
            unknown[str(image_id)] = None
        r = dict(r)
        if key == "segmentation":
            r.pop("bbox", None)
        checked.append(r)
    if unknown:
        ids = ", ".join(list(unknown)[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise fail(source, f"image_id {ids}{more} not in the ground truth")
    return checked


def format_table(stats: Sequence[float]) -> str:
    """The 12-line table exactly as ``COCOeval.summarize()`` prints it (with trailing newline)."""
    if len(stats) != len(STAT_NAMES):
        raise ValueError(f"expected {len(STAT_NAMES)} stats, got {len(stats)}")
    lines = []
    for value, (is_ap, iou, area, max_dets) in zip(stats, _STAT_LINES):
        title, kind = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
        iou_str = f"{0.5:0.2f}:{0.95:0.2f}" if iou is None else f"{iou:0.2f}"
        lines.append(
            f" {title:<18} {kind} @[ IoU={iou_str:<9} | area={area:>6s} | maxDets={max_dets:>3d} ]"
            f" = {value:0.3f}"
        )
    return "\n".join(lines) + "\n"


def _report(iou_type: str, stats: Sequence[float], summary: str) -> dict[str, Any]:
    stats = [float(s) for s in stats]
    return {
        "iou_type": iou_type,
        "stats": stats,
        "metrics": dict(zip(STAT_NAMES, stats)),
        "summary": summary,
    }


def evaluate(
    gt: str | os.PathLike | COCO | dict,
    results: Results | str | os.PathLike,
    iou_type: str = "segm",
    quiet: bool = True,
    use_cats: bool = True,
) -> dict[str, Any]:
    """Run COCOeval (evaluate, accumulate, summarize) on all ground-truth images.

    Returns ``{"iou_type", "stats" (12 floats, STAT_NAMES order), "metrics" (name -> float),
    "summary" (the text summarize() prints)}``. ``gt`` may also be an in-memory COCO dict.
    """
    if iou_type not in _REQUIRED_KEY:
        raise EdgesegError(f"unknown iou_type {iou_type!r}: expected 'segm', 'bbox' or 'boundary'")
    source: Any = "results"
    if not isinstance(results, list):
        source = results
        results = load_results(results)
    chatter = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    with chatter:
        coco_gt = _load_gt(gt, iou_type)
        checked = _check_results(results, coco_gt, iou_type, source)
        if not checked:
            summary = "No detections: every metric is 0.0.\n" + format_table([0.0] * len(STAT_NAMES))
            if not quiet:
                print(summary, end="")
            return _report(iou_type, [0.0] * len(STAT_NAMES), summary)
        coco_dt = coco_gt.loadRes(checked)
        coco_eval = BoundaryEval(coco_gt, coco_dt) if iou_type == "boundary" else COCOeval(coco_gt, coco_dt, iou_type)
        coco_eval.params.useCats = int(use_cats)
        coco_eval.evaluate()
        coco_eval.accumulate()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        coco_eval.summarize()
    summary = captured.getvalue()
    if not quiet:
        print(summary, end="")
    return _report(iou_type, coco_eval.stats, summary)


def detections_to_results(image_id: int, dets, category_ids: Sequence[int]) -> Results:
    """One image's Detections as COCO results: ``bbox`` (xywh, from the detections' boxes) always,
    ``segmentation`` (RLE) when the detections carry masks. A model with a box head is evaluated
    on its boxes, as detectron2 evaluates Mask R-CNN; a mask-only model's boxes are its masks'."""
    if dets.masks is not None:
        return masks_to_results(image_id, dets.masks, dets.scores, dets.labels, category_ids, dets.boxes)
    bad = [int(x) for x in dets.labels if not 0 <= int(x) < len(category_ids)]
    if bad:
        raise EdgesegError(f"label {bad[0]} has no category id ({len(category_ids)} category ids given)")
    return [{"image_id": int(image_id), "category_id": int(category_ids[int(label)]),
             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "score": float(score)}
            for (x0, y0, x1, y1), score, label in zip(dets.boxes, dets.scores, dets.labels)]


def masks_to_results(
    image_id: int,
    masks: np.ndarray,
    scores: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[int],
    category_ids: Sequence[int],
    boxes: np.ndarray | None = None,
) -> Results:
    """Turn one image's predicted masks into COCO results with compressed RLE and xywh bbox (from
    ``boxes`` [N, 4] xyxy where given, else the masks' tight boxes).

    ``labels`` are contiguous class indices; ``category_ids[label]`` is the COCO category id.
    """
    masks = np.asarray(masks)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {masks.shape}")
    n = masks.shape[0]
    if len(scores) != n or len(labels) != n:
        raise ValueError(f"got {n} masks, {len(scores)} scores and {len(labels)} labels")
    if n == 0:
        return []
    bad = [int(x) for x in labels if not 0 <= int(x) < len(category_ids)]
    if bad:
        raise EdgesegError(f"label {bad[0]} has no category id ({len(category_ids)} category ids given)")
    # pycocotools wants a Fortran-ordered uint8 [H, W, N] array.
    rles = mask_util.encode(np.asfortranarray(masks.astype(bool).transpose(1, 2, 0).astype(np.uint8)))
    if boxes is None:
        boxes = mask_util.toBbox(rles)
    else:
        boxes = np.asarray(boxes, np.float64).reshape(n, 4)
        boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    out: Results = []
    for rle, box, score, label in zip(rles, boxes, scores, labels):
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[int(label)]),
                "segmentation": {
                    "size": [int(s) for s in rle["size"]],
                    "counts": rle["counts"].decode("ascii"),
                },
                "bbox": [float(v) for v in box],
                "score": float(score),
            }
        )
    return out
