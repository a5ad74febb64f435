"""Point annotations made from masks, by the protocol of PointSup (Cheng et al., CVPR 2022):
per object, P points drawn uniformly in its box, each labelled 1 on the object and 0 off it by
the mask, and the mask dropped. The output is detectron2's format: a COCO JSON whose annotations
keep ``bbox`` and carry ``point_coords`` [[x, y], ...] (pixels) and ``point_labels``.

A point is stored at the centre of the pixel it labels (x + 0.5, y + 0.5 in continuous
coordinates, where pixel j spans [j, j + 1)), so that reading a full-resolution mask there gives
back the label. detectron2's script stores the pixel's integer corner instead, half a pixel off
in its own convention.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgeseg.data.coco import CocoDataset, resolve_dataset
from edgeseg.data.masks import decode_segmentation, mask_to_bbox
from edgeseg.errors import EdgesegError, fail
from edgeseg.io import check_output, write_json

MASK_FIELDS = ("segmentation", "area")  # what a points file no longer carries (area is the mask's)


def sample_points(mask: np.ndarray, box: list[float], count: int, rng: np.random.Generator):
    """``count`` points uniform in ``box`` ([x, y, w, h], clipped to the mask's image) and their
    labels read from ``mask`` [H, W]: (coords [count, 2] at pixel centres, labels [count])."""
    h, w = mask.shape
    x0, y0 = min(max(box[0], 0.0), w), min(max(box[1], 0.0), h)
    x1, y1 = min(max(box[0] + box[2], x0), w), min(max(box[1] + box[3], y0), h)
    u = rng.random((count, 2))
    px = np.minimum(np.floor(x0 + u[:, 0] * (x1 - x0)), w - 1).astype(np.int64)
    py = np.minimum(np.floor(y0 + u[:, 1] * (y1 - y0)), h - 1).astype(np.int64)
    return np.stack([px + 0.5, py + 0.5], axis=1), mask[py, px].astype(np.int64)


def point_annotations(source: str | os.PathLike, count: int, seed: int, image_root: Path) -> dict:
    """The COCO JSON of ``source`` (a masks dataset) with every mask replaced by ``count`` labelled
    points; image file names are written relative to ``image_root`` (where the output's reader
    will look for them)."""
    if count < 1:
        raise EdgesegError(f"--points {count}: must be at least 1")
    dataset = CocoDataset(source)  # validates every field first
    data = json.loads(dataset.json_path.read_text(encoding="utf-8"))
    records = {r["id"]: r for r in dataset.records}
    rng = np.random.default_rng(seed)
    for im in data["images"]:
        im["file_name"] = Path(os.path.relpath(records[im["id"]]["file_name"], image_root.absolute())).as_posix()
    out = []
    for ann in data["annotations"]:
        rec = records[ann["image_id"]]
        if "segmentation" not in ann:
            raise fail(dataset.json_path, f"annotation {ann.get('id')} (image {rec['id']}) has no 'segmentation': "
                                          "points are labelled from masks")
        mask = decode_segmentation(ann["segmentation"], rec["height"], rec["width"])
        new = {k: v for k, v in ann.items() if k not in MASK_FIELDS}
        new["bbox"] = [float(v) for v in ann.get("bbox") or mask_to_bbox(mask)]
        if not ann.get("iscrowd", 0):  # crowd regions train nothing: they keep only their box
            coords, labels = sample_points(mask, new["bbox"], count, rng)
            new["point_coords"], new["point_labels"] = coords.tolist(), labels.tolist()
        out.append(new)
    data["annotations"] = out
    data.setdefault("info", {})
    if isinstance(data["info"], dict):
        data["info"]["edgeseg_points"] = {"points_per_instance": count, "seed": seed,
                                          "source": str(dataset.json_path)}
    return data


def write_point_annotations(source: str | os.PathLike, out: str | os.PathLike, count: int, seed: int = 0,
                            versions: int = 1) -> list[Path]:
    """Write ``versions`` point files (seeds ``seed``, ``seed + 1``, ...) for a masks dataset:
    ``out`` itself for one version, ``<stem>_v1.json`` ... for several. Images stay where they are;
    the file names inside point to them from the output's folder. Returns the paths written."""
    out = Path(out)
    if out.suffix != ".json":
        raise fail(out, "expected a .json file name for the point annotations")
    if versions < 1:
        raise EdgesegError(f"--versions {versions}: must be at least 1")
    paths = [out] if versions == 1 else [out.with_name(f"{out.stem}_v{k + 1}.json") for k in range(versions)]
    for path in paths:
        check_output(path, "point annotations")
    source_json, _ = resolve_dataset(source)
    if any(p.resolve() == source_json.resolve() for p in paths):
        raise fail(out, "is the source annotation file; choose another name (the masks would be lost)")
    for k, path in enumerate(paths):
        image_root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
        write_json(path, point_annotations(source, count, seed + k, image_root), indent=None)
    return paths
