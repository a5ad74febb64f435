"""COCO instance-segmentation datasets: strict loading, mask decoding and atomic writing.

Layout: ``D/annotations.json`` plus images under ``D/images/`` (or directly under ``D``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from edgeseg.errors import EdgesegError, fail
from edgeseg.io import atomic_path

# pycocotools 2.0.x decode() triggers a NumPy 2 copy-keyword DeprecationWarning on every call;
# it is harmless, so silence exactly that one instead of flooding training logs.
warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                        category=DeprecationWarning, module=r"pycocotools\.")

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


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
            if not all(_is_int(im[key]) and im[key] > 0 for key in ("height", "width")):
                raise self._error(f"image {im['id']}: 'height' and 'width' must be positive integers")
            if im["id"] in seen:
                raise self._error(f"duplicate image id {im['id']}")
            seen.add(im["id"])
            records.append({"id": im["id"], "file_name": (self.image_root / im["file_name"]).absolute(),
                            "height": im["height"], "width": im["width"], "anns": []})
        return records

    def _parse_annotations(self, entries: list[Any]) -> None:
        by_id = {r["id"]: r for r in self.records}
        for k, ann in enumerate(entries):
            if not isinstance(ann, dict):
                raise self._error(f"annotation entry {k} is not an object")
            aid = ann.get("id", f"#{k}")
            for key in ("image_id", "category_id", "segmentation"):
                if key not in ann:
                    raise self._error(f"annotation {aid}: missing '{key}'")
            rec = by_id.get(ann["image_id"]) if _is_int(ann["image_id"]) else None
            if rec is None:
                raise self._error(f"annotation {aid}: unknown image_id {ann['image_id']!r}")
            where = f"annotation {aid} (image {rec['id']})"
            if not _is_int(ann["category_id"]) or ann["category_id"] not in self._label_of:
                raise self._error(f"{where}: unknown category_id {ann['category_id']!r}")
            problem = _segmentation_problem(ann["segmentation"], rec["height"], rec["width"])
            if problem:
                raise self._error(f"{where}: {problem}")
            rec["anns"].append(ann)

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

    def load_targets(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(masks uint8 [N,H,W], labels int64 [N])`` for non-crowd, non-empty instances."""
        rec = self.records[i]
        h, w = rec["height"], rec["width"]
        masks: list[np.ndarray] = []
        labels: list[int] = []
        for ann in rec["anns"]:
            if ann.get("iscrowd", 0):
                continue
            try:
                m = decode_segmentation(ann["segmentation"], h, w)
            except Exception as e:  # pycocotools raises bare exceptions on malformed RLE strings
                raise self._error(f"annotation {ann.get('id')} (image {rec['id']}): cannot decode "
                                  f"segmentation ({e})") from None
            if m.any():
                masks.append(m)
                labels.append(self._label_of[ann["category_id"]])
        if not masks:
            return np.zeros((0, h, w), np.uint8), np.zeros((0,), np.int64)
        return np.stack(masks), np.asarray(labels, np.int64)


def _segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """Describe what is wrong with a COCO segmentation, or None if it is usable."""
    if isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                return "polygon must be a flat list of numbers [x1, y1, x2, y2, ...]"
            if len(poly) % 2:
                return f"polygon with an odd number of coordinates ({len(poly)})"
            if len(poly) < 6:
                return f"polygon with {len(poly) // 2} points, need at least 3"
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


def decode_segmentation(seg: list | dict, h: int, w: int) -> np.ndarray:
    """Decode a polygon list or (un)compressed RLE into an HxW uint8 0/1 mask."""
    if isinstance(seg, list):
        if not seg:
            return np.zeros((h, w), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = {"size": [h, w], "counts": seg["counts"]}
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=np.uint8)


def read_image_rgb(path: Path) -> np.ndarray:
    """Read any image OpenCV decodes as HxWx3 uint8 RGB (16-bit, float, gray and alpha handled)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise fail(path, "image file not found") from None
    except OSError as e:
        raise fail(path, f"cannot read image ({e.strerror})") from None
    if is_truncated(data):
        raise fail(path, "cannot decode image (truncated file)")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise fail(path, "cannot decode image (corrupt or truncated)")
    return to_rgb8(image, bgr=True)


def is_truncated(data: np.ndarray) -> bool:
    """PNG without its IEND chunk or JPEG without its end marker. Checked before decoding because
    libpng/libjpeg print their own complaint to stderr and may return a partly grey image."""
    head, tail = data[:8].tobytes(), data[-16:].tobytes()
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" not in tail
    return False


def to_rgb8(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Convert a gray/2/3/4-channel image of any depth to HxWx3 uint8 (RGB; input BGR if ``bgr``)."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(image, initial=0.0)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * scale + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2 or image.shape[2] == 2:  # gray or gray+alpha: alpha is dropped
        gray = image if image.ndim == 2 else image[:, :, 0]
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    rgb = image[:, :, 2::-1] if bgr else image[:, :, :3]
    return np.ascontiguousarray(rgb)


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a 2-D mask, with ``counts`` as str (JSON-serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_area(rle: dict[str, Any]) -> int:
    """Pixel count of a compressed RLE (``counts`` as str or bytes)."""
    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"]}))


def mask_to_bbox(mask: np.ndarray) -> list[float]:
    """Tight COCO box ``[x, y, w, h]`` around the non-zero pixels (zeros for an empty mask)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


def _outset_polygon(contour: np.ndarray) -> np.ndarray:
    """Polygon through boundary-pixel centres, pushed out by half a pixel (mitred at corners).

    Without the outset, rasterising the polygon loses about half of every boundary pixel.
    """
    pts = contour.reshape(-1, 2).astype(np.float64) + 0.5  # COCO puts pixel centres at i + 0.5
    edges = np.roll(pts, -1, axis=0) - pts
    edges /= np.maximum(np.linalg.norm(edges, axis=1, keepdims=True), 1e-9)
    twice_area = float(np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1]))
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1) * (1.0 if twice_area > 0 else -1.0)
    n_in, n_out = np.roll(normals, 1, axis=0), normals
    cos = np.sum(n_in * n_out, axis=1, keepdims=True)
    return pts + 0.5 * (n_in + n_out) / np.maximum(1.0 + cos, 0.25)


def mask_to_segmentation(mask: np.ndarray, min_iou: float = 0.98) -> list[list[float]] | dict[str, Any]:
    """Polygons for a mask, or compressed RLE when polygons cannot represent it well.

    RLE is used for masks with holes (COCO polygons are unioned, so holes would be filled), for
    slivers without a 3-point contour and whenever the rasterised polygons miss ``min_iou``.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    has_holes = hierarchy is not None and bool((hierarchy[0, :, 3] >= 0).any())
    polygons = [np.round(_outset_polygon(c), 2).reshape(-1).tolist() for c in contours if len(c) >= 3]
    if has_holes or not polygons:
        return mask_to_rle(m)
    drawn = decode_segmentation(polygons, *m.shape)
    fg = m > 0
    union = np.count_nonzero(fg | (drawn > 0))
    if np.count_nonzero(fg & (drawn > 0)) < min_iou * union:
        return mask_to_rle(m)
    return polygons


class CocoWriter:
    """Stream images and instances into a dataset folder that appears atomically on :meth:`close`.

    Use as a context manager; on an exception nothing is left behind.
    """

    def __init__(self, out_dir: str | os.PathLike, class_names: Sequence[str]) -> None:
        self._atomic = atomic_path(out_dir)
        self._root = self._atomic.__enter__()
        (self._root / IMAGES_DIR).mkdir(parents=True)
        self._data: dict[str, list[dict[str, Any]]] = {
            "images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(class_names)],
        }
        self._num_classes = len(class_names)

    def add(self, file_name: str, image: np.ndarray, instances: Sequence[tuple[np.ndarray, int]]) -> None:
        """Add an RGB uint8 image (saved as ``images/<file_name>``) and its (mask, class index) pairs."""
        h, w = image.shape[:2]
        path = self._root / IMAGES_DIR / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = image[:, :, ::-1] if image.ndim == 3 else image
        ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(bgr))
        if not ok:
            raise EdgesegError(f"{file_name}: cannot encode image")
        path.write_bytes(buf.tobytes())
        image_id = len(self._data["images"]) + 1
        self._data["images"].append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        anns = self._data["annotations"]
        for mask, label in instances:
            if mask.shape != (h, w) or not 0 <= label < self._num_classes:
                raise ValueError(f"{file_name}: bad mask shape {mask.shape} or class index {label}")
            area = int(np.count_nonzero(mask))
            if area == 0:
                continue
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(label) + 1,
                         "segmentation": mask_to_segmentation(mask), "area": area,
                         "bbox": mask_to_bbox(mask), "iscrowd": 0})

    def close(self) -> None:
        with open(self._root / ANNOTATIONS_FILE, "w", encoding="utf-8") as f:
            json.dump(self._data, f, separators=(",", ":"))
        self._atomic.__exit__(None, None, None)

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._atomic.__exit__(exc_type, exc, tb)


def write_coco(out_dir: str | os.PathLike, images: Sequence[tuple[str, np.ndarray]],
               annotations: Sequence[Sequence[tuple[np.ndarray, int]]], class_names: Sequence[str]) -> None:
    """Write a dataset folder atomically: PNG/JPEG images + polygon (or RLE) annotations.

    ``images`` holds ``(file_name, RGB uint8 image)``; ``annotations[i]`` holds ``(mask, class index)``
    pairs for image i; categories get ids ``1..K`` in ``class_names`` order.
    """
    if len(images) != len(annotations):
        raise ValueError(f"{len(images)} images but {len(annotations)} annotation lists")
    with CocoWriter(out_dir, class_names) as writer:
        for (name, image), instances in zip(images, annotations):
            writer.add(name, image, instances)
