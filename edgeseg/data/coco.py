"""Reading COCO datasets strictly: every field validated, then the targets its supervision gives.

Layout: ``D/annotations.json`` plus images under ``D/images/`` (or directly under ``D``).

Supervision, per annotation, by the fields present: ``segmentation`` -> masks; detectron2's
``point_coords`` ([[x, y], ...] in pixels) with ``point_labels`` (0/1 per point) and a ``bbox`` ->
points; a ``bbox`` alone -> boxes. Masks and points annotations give boxes too. A dataset gives
what all its (non-crowd) annotations give, so its kind is the weakest among them: one bbox-only
annotation makes a masks dataset a boxes dataset (``supervision_note`` names it). A file without
annotations counts as masks, as COCO instance segmentation always did.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.data.images import read_image_rgb
from edgeseg.data.masks import decode_segmentation, mask_to_bbox
from edgeseg.errors import EdgesegError, fail

ANNOTATIONS_FILE = "annotations.json"
MAX_SIDE = 16384  # larger images are almost surely a typo; one mask of them is already 256 MB
IMAGES_DIR = "images"
KINDS_BY_STRENGTH = ("masks", "points", "boxes")
KIND_FIELDS = {"masks": "segmentation", "points": "point_coords", "boxes": "bbox"}


def resolve_dataset(spec: str | os.PathLike) -> tuple[Path, Path]:
    """Return ``(json_path, image_root)`` for a dataset folder or a COCO JSON file."""
    path = Path(spec)
    if path.is_dir():
        json_path = path / ANNOTATIONS_FILE
        if not json_path.is_file():
            raise fail(path, f"not a dataset folder: {ANNOTATIONS_FILE} not found")
        root = path
    elif path.is_file():
        json_path, root = path, path.parent
    else:
        raise fail(path, "no such dataset folder or annotation file")
    images = root / IMAGES_DIR
    return json_path, images if images.is_dir() else root


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class CocoDataset:
    """A validated COCO dataset; images are decoded lazily by :meth:`load_image`."""

    def __init__(self, spec: str | os.PathLike) -> None:
        self.json_path, self.image_root = resolve_dataset(spec)
        data = self._read_json()
        self._check_top_level(data)
        cats = self._parse_categories(data["categories"])
        self.category_ids: list[int] = sorted(cats)
        self.class_names: list[str] = [cats[c] for c in self.category_ids]
        self._label_of = {c: i for i, c in enumerate(self.category_ids)}
        self.records: list[dict[str, Any]] = self._parse_images(data["images"])
        self._parse_annotations(data["annotations"])
        self._check_files_exist()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def source(self) -> Path:
        return self.json_path

    def _error(self, problem: str) -> EdgesegError:
        return fail(self.json_path, problem)

    def _read_json(self) -> Any:
        try:
            text = self.json_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self._error("file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise self._error(f"cannot read file ({e})") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise self._error(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None

    def _check_top_level(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise self._error("expected a JSON object at the top level")
        missing = [k for k in ("images", "annotations", "categories") if k not in data]
        if missing:
            raise self._error("missing top-level key(s): " + ", ".join(repr(k) for k in missing))
        for key in ("images", "annotations", "categories"):
            if not isinstance(data[key], list):
                raise self._error(f"'{key}' must be a list")
        if not data["images"]:
            raise self._error("contains no images")
        if not data["categories"]:
            raise self._error("contains no categories")

    def _parse_categories(self, entries: list[Any]) -> dict[int, str]:
        cats: dict[int, str] = {}
        for k, c in enumerate(entries):
            if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
                raise self._error(f"category entry {k} needs an integer 'id' and a string 'name'")
            if c["id"] in cats:
                raise self._error(f"duplicate category id {c['id']}")
            cats[c["id"]] = c["name"]
        return cats

    def _parse_images(self, entries: list[Any]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        seen: set[int] = set()
        for k, im in enumerate(entries):
            if not isinstance(im, dict):
                raise self._error(f"image entry {k} is not an object")
            for key in ("id", "file_name", "height", "width"):
                if key not in im:
                    raise self._error(f"image entry {k}: missing '{key}'")
            if not _is_int(im["id"]) or not isinstance(im["file_name"], str) or not im["file_name"]:
                raise self._error(f"image entry {k}: 'id' must be an integer and "
                                  "'file_name' a non-empty string")
            if not all(_is_int(im[key]) and 0 < im[key] <= MAX_SIDE for key in ("height", "width")):
                raise self._error(f"image {im['id']}: 'height' and 'width' must be integers from 1 to {MAX_SIDE}")
            if im["id"] in seen:
                raise self._error(f"duplicate image id {im['id']}")
            seen.add(im["id"])
            records.append({"id": im["id"], "file_name": (self.image_root / im["file_name"]).absolute(),
                            "height": im["height"], "width": im["width"], "anns": []})
        return records

    def _parse_annotations(self, entries: list[Any]) -> None:
        by_id = {r["id"]: r for r in self.records}
        gives: list[tuple[set[str], str]] = []
        for k, ann in enumerate(entries):
            if not isinstance(ann, dict):
                raise self._error(f"annotation entry {k} is not an object")
            aid = ann.get("id", f"#{k}")
            for key in ("image_id", "category_id"):
                if key not in ann:
                    raise self._error(f"annotation {aid}: missing '{key}'")
            rec = by_id.get(ann["image_id"]) if _is_int(ann["image_id"]) else None
            if rec is None:
                raise self._error(f"annotation {aid}: unknown image_id {ann['image_id']!r}")
            where = f"annotation {aid} (image {rec['id']})"
            if not _is_int(ann["category_id"]) or ann["category_id"] not in self._label_of:
                raise self._error(f"{where}: unknown category_id {ann['category_id']!r}")
            problem = annotation_problem(ann, rec["height"], rec["width"])
            if problem:
                raise self._error(f"{where}: {problem}")
            rec["anns"].append(ann)
            if not ann.get("iscrowd", 0):
                gives.append((annotation_gives(ann), where))
        self._set_supervision(gives)

    def _set_supervision(self, gives: list[tuple[set[str], str]]) -> None:
        common = set.intersection(*(g for g, _ in gives)) if gives else {"masks", "boxes"}
        self.gives: tuple[str, ...] = (*(k for k in KINDS_BY_STRENGTH if k in common), "none")
        self.supervision: str = self.gives[0]
        best = next((k for k in KINDS_BY_STRENGTH if any(k in g for g, _ in gives)), None)
        self.supervision_note = next((f"{where} has no '{KIND_FIELDS[best]}'" for g, where in gives
                                      if best not in g), "")

    def _check_files_exist(self) -> None:
        missing = [r["file_name"] for r in self.records if not r["file_name"].is_file()]
        if missing:
            raise self._error(f"image file {missing[0]} does not exist "
                              f"({len(missing)} of {len(self.records)} image files missing)")

    def load_image(self, i: int) -> np.ndarray:
        """Decode image ``i`` as an HxWx3 uint8 RGB array."""
        rec = self.records[i]
        image = read_image_rgb(rec["file_name"])
        if image.shape[:2] != (rec["height"], rec["width"]):
            raise fail(rec["file_name"], f"image is {image.shape[1]}x{image.shape[0]} (WxH) but "
                                         f"{self.json_path.name} says {rec['width']}x{rec['height']}")
        return image

    def load_instances(self, i: int) -> dict[str, np.ndarray]:
        """The non-crowd instances of image ``i``, as the fields the dataset gives (``gives``).

        ``labels`` int64 [N] always; ``masks`` uint8 [N,H,W]; ``boxes`` float32 [N,4] xyxy (the
        ``bbox``, else the mask's box) clipped to the image; ``points`` float32 [N,P,2] xy with
        ``point_labels`` int64 [N,P] (1 on the object, 0 off it, -1 padding). An instance whose
        mask (masks datasets) or clipped box (others) is empty is left out.
        """
        rec = self.records[i]
        h, w = rec["height"], rec["width"]
        anns = [a for a in rec["anns"] if not a.get("iscrowd", 0)]
        masks = [self._decode(a, rec) if "masks" in self.gives or "bbox" not in a else None for a in anns]
        boxes = np.asarray([_xyxy(a, m) for a, m in zip(anns, masks)], np.float32).reshape(-1, 4)
        out = {"labels": np.asarray([self._label_of[a["category_id"]] for a in anns], np.int64),
               "boxes": np.clip(boxes, 0, np.asarray([w, h, w, h], np.float32))}
        if "masks" in self.gives:
            out["masks"] = np.stack(masks) if masks else np.zeros((0, h, w), np.uint8)
            keep = out["masks"].any(axis=(1, 2))
        else:
            keep = (out["boxes"][:, 2] > out["boxes"][:, 0]) & (out["boxes"][:, 3] > out["boxes"][:, 1])
        if "points" in self.gives:
            out["points"], out["point_labels"] = _padded_points(anns)
        return {k: v[keep] for k, v in out.items()}

    def load_targets(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(masks uint8 [N,H,W], labels int64 [N])`` of :meth:`load_instances`; masks datasets only."""
        if "masks" not in self.gives:
            note = f" ({self.supervision_note})" if self.supervision_note else ""
            raise self._error(f"has {self.supervision} annotations{note}, not masks")
        instances = self.load_instances(i)
        return instances["masks"], instances["labels"]

    def _decode(self, ann: dict[str, Any], rec: dict[str, Any]) -> np.ndarray:
        try:
            return decode_segmentation(ann["segmentation"], rec["height"], rec["width"])
        except Exception as e:  # pycocotools raises bare exceptions on malformed RLE strings
            raise self._error(f"annotation {ann.get('id')} (image {rec['id']}): cannot decode "
                              f"segmentation ({e})") from None


def annotation_gives(ann: dict[str, Any]) -> set[str]:
    """The supervision kinds a valid annotation gives (see the module docstring)."""
    return {"boxes"} | {k for k in ("masks", "points") if KIND_FIELDS[k] in ann}


def _xyxy(ann: dict[str, Any], mask: np.ndarray | None) -> list[float]:
    x, y, w, h = ann["bbox"] if "bbox" in ann else mask_to_bbox(mask)
    return [x, y, x + w, y + h]


def _padded_points(anns: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    size = max((len(a["point_coords"]) for a in anns), default=0)
    points = np.zeros((len(anns), size, 2), np.float32)
    labels = np.full((len(anns), size), -1, np.int64)
    for k, a in enumerate(anns):
        points[k, : len(a["point_coords"])] = a["point_coords"]
        labels[k, : len(a["point_labels"])] = a["point_labels"]
    return points, labels


def _is_finite(x: Any) -> bool:
    return _is_number(x) and math.isfinite(x)


def annotation_problem(ann: dict[str, Any], h: int, w: int) -> str | None:
    """Describe what is wrong with a COCO annotation of an ``h`` x ``w`` image, or None.

    Every number is checked before pycocotools sees it: a NaN or 1e30 polygon coordinate makes
    its rasteriser allocate without bound.
    """
    if not any(key in ann for key in ("segmentation", "bbox", "point_coords", "point_labels")):
        return "needs a 'segmentation', a 'bbox' or 'point_coords' with 'point_labels'"
    problem = segmentation_problem(ann["segmentation"], h, w) if "segmentation" in ann else None
    if problem:
        return problem
    if "point_coords" in ann or "point_labels" in ann:
        problem = points_problem(ann, h, w)
        if problem:
            return problem
    box = ann.get("bbox")
    if "bbox" in ann:
        if not isinstance(box, list) or len(box) != 4 or not all(_is_finite(v) for v in box):
            return "'bbox' must be 4 finite numbers [x, y, width, height]"
        if box[2] < 0 or box[3] < 0:
            return f"'bbox' has a negative size {box[2]}x{box[3]}"
        if not _in_frame(box[:2], h, w) or box[2] > 2 * w or box[3] > 2 * h:
            return f"'bbox' {box} lies far outside the {w}x{h} image"
    area = ann.get("area")
    if "area" in ann and not (_is_finite(area) and 0 <= area <= 4 * h * w):
        return f"'area' must be a finite number from 0 to the image area, got {area!r}"
    if ann.get("iscrowd", 0) not in (0, 1):
        return f"'iscrowd' must be 0 or 1, got {ann.get('iscrowd')!r}"
    return None


def points_problem(ann: dict[str, Any], h: int, w: int) -> str | None:
    """detectron2's point supervision: ``point_coords`` [[x, y], ...] in pixels (continuous: pixel
    (i, j) spans [j, j+1) x [i, i+1)), ``point_labels`` 0/1 each, and the object's ``bbox`` (or a
    mask to take it from)."""
    coords, labels = ann.get("point_coords"), ann.get("point_labels")
    if coords is None or labels is None:
        return "'point_coords' and 'point_labels' must come together"
    if "bbox" not in ann and "segmentation" not in ann:
        return "a points annotation needs a 'bbox'"
    if not isinstance(coords, list) or not coords or not all(
            isinstance(p, list) and len(p) == 2 and all(_is_finite(v) for v in p) for p in coords):
        return "'point_coords' must be a non-empty list of [x, y] pairs of finite numbers"
    if not isinstance(labels, list) or len(labels) != len(coords):
        return f"'point_labels' must be a list with one label per point ({len(coords)})"
    bad = next((k for k, v in enumerate(labels) if not _is_int(v) or v not in (0, 1)), None)
    if bad is not None:
        return f"'point_labels' must be 0 or 1, got {labels[bad]!r}"
    out = next((k for k, (x, y) in enumerate(coords) if not (0 <= x <= w and 0 <= y <= h)), None)
    if out is not None:
        return f"point {out} {coords[out]} lies outside the {w}x{h} image"
    return None


def _in_frame(xy: Sequence[float], h: int, w: int) -> bool:
    """Coordinates may leave the image a little (annotation tools overshoot), not without bound."""
    margin = max(h, w)
    return all(-margin <= x <= w + margin for x in xy[0::2]) and all(-margin <= y <= h + margin for y in xy[1::2])


def segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """Describe what is wrong with a COCO segmentation, or None if it is usable."""
    if isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                return "polygon must be a flat list of numbers [x1, y1, x2, y2, ...]"
            if not all(math.isfinite(v) for v in poly):
                return "polygon coordinate is NaN or infinite"
            if len(poly) % 2:
                return f"polygon with an odd number of coordinates ({len(poly)})"
            if len(poly) < 6:
                return f"polygon with {len(poly) // 2} points, need at least 3"
            if not _in_frame(poly, h, w):
                return f"polygon coordinate far outside the {w}x{h} image (e.g. {max(poly, key=abs)})"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if size != [h, w]:
            return f"RLE size {size!r} does not match the image size [{h}, {w}]"
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts) or sum(counts) != h * w:
                return f"uncompressed RLE counts must be non-negative integers summing to {h * w}"
            return None
        if isinstance(counts, str):
            return None
        return "RLE 'counts' must be a list of integers or a string"
    return "segmentation must be a list of polygons or an RLE object"
