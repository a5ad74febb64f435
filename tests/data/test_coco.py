"""CocoDataset loading/validation and write_coco round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgeseg.data.coco import CocoDataset, resolve_dataset
from edgeseg.data.coco_writer import write_coco
from edgeseg.data.masks import mask_to_rle, rle_area
from edgeseg.errors import EdgesegError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
H, W = 48, 64


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


def _masks() -> list[np.ndarray]:
    circle = cv2.circle(np.zeros((H, W), np.uint8), (20, 20), 12, 1, -1)
    rect = cv2.rectangle(np.zeros((H, W), np.uint8), (30, 5), (60, 30), 1, -1)
    ring = cv2.circle(np.zeros((H, W), np.uint8), (40, 30), 14, 1, -1)
    ring = cv2.circle(ring, (40, 30), 6, 0, -1)  # a hole: must be written as RLE
    tiny = np.zeros((H, W), np.uint8)
    tiny[45, 2] = 1  # a single pixel has no 3-point polygon
    return [circle, rect, ring, tiny]


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def _make_dataset(root: Path, anns: list[dict[str, Any]] | None = None, drop: tuple[str, ...] = (),
                  **overrides: Any) -> Path:
    """A 2-image dataset folder; ``overrides`` replace top-level JSON keys, ``drop`` removes some."""
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        _write_png(root / "images" / name, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    data = {
        "images": [{"id": 3, "file_name": "a.png", "height": H, "width": W},
                   {"id": 4, "file_name": "b.png", "height": H, "width": W}],
        "annotations": anns if anns is not None else [
            {"id": 17, "image_id": 3, "category_id": 1, "iscrowd": 0,
             "segmentation": [[1, 1, 20, 1, 20, 20, 1, 20]]}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    data.update(overrides)
    for key in drop:
        del data[key]
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def test_write_coco_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    masks = _masks()
    write_coco(tmp_path / "ds", [("x.png", image), ("empty.png", image[::-1].copy())],
               [[(m, k % 2) for k, m in enumerate(masks)], []], ["alpha", "beta"])
    data = json.loads((tmp_path / "ds" / "annotations.json").read_text())
    assert [c["id"] for c in data["categories"]] == [1, 2]
    segs = [a["segmentation"] for a in data["annotations"]]
    assert isinstance(segs[0], list) and isinstance(segs[1], list)
    assert isinstance(segs[2], dict) and isinstance(segs[3], dict)  # hole and single pixel -> RLE
    for ann, m in zip(data["annotations"], masks):
        assert ann["area"] == int(m.sum()) and ann["iscrowd"] == 0
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]

    ds = CocoDataset(tmp_path / "ds")
    assert len(ds) == 2 and ds.class_names == ["alpha", "beta"] and ds.category_ids == [1, 2]
    assert ds.records[0]["file_name"] == (tmp_path / "ds" / "images" / "x.png").absolute()
    np.testing.assert_array_equal(ds.load_image(0), image)
    got, labels = ds.load_targets(0)
    assert got.dtype == np.uint8 and labels.dtype == np.int64 and got.shape == (4, H, W)
    assert labels.tolist() == [0, 1, 0, 1]
    for g, m in zip(got, masks):
        assert _iou(g, m) > 0.95
    empty_masks, empty_labels = ds.load_targets(1)
    assert empty_masks.shape == (0, H, W) and empty_labels.shape == (0,)
    assert not list(tmp_path.glob(".ds*"))  # no temporary leftovers


def test_rle_forms_crowd_and_category_order(tmp_path: Path) -> None:
    m1, m2, m3, _ = _masks()
    uncompressed: list[int] = []
    flat = m2.flatten(order="F")  # COCO runs go column by column, starting with zeros
    value, run = 0, 0
    for v in flat:
        if v != value:
            uncompressed.append(run)
            value, run = v, 0
        run += 1
    uncompressed.append(run)
    rle = mask_to_rle(m1)
    assert isinstance(rle["counts"], str) and rle_area(rle) == int(m1.sum())
    anns = [
        {"id": 1, "image_id": 3, "category_id": 9, "segmentation": rle},
        {"id": 2, "image_id": 3, "category_id": 5, "segmentation": {"size": [H, W], "counts": uncompressed}},
        {"id": 3, "image_id": 3, "category_id": 5, "iscrowd": 1, "segmentation": mask_to_rle(m3)},
        {"id": 4, "image_id": 3, "category_id": 9, "iscrowd": 0, "segmentation": []},
    ]
    cats = [{"id": 9, "name": "nine"}, {"id": 5, "name": "five"}]
    ds = CocoDataset(_make_dataset(tmp_path, anns, categories=cats))
    assert ds.class_names == ["five", "nine"] and ds.category_ids == [5, 9]
    masks, labels = ds.load_targets(0)
    assert labels.tolist() == [1, 0]  # crowd and empty annotations are excluded
    np.testing.assert_array_equal(masks[0], m1)
    np.testing.assert_array_equal(masks[1], m2)


def test_resolve_dataset_layouts(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path / "d")
    assert resolve_dataset(root) == (root / "annotations.json", root / "images")
    assert resolve_dataset(str(root / "annotations.json")) == (root / "annotations.json", root / "images")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "annotations.json").write_text("{}")
    assert resolve_dataset(flat) == (flat / "annotations.json", flat)
    with pytest.raises(EdgesegError, match="annotations.json not found"):
        resolve_dataset(tmp_path)
    with pytest.raises(EdgesegError, match="nothing_here"):
        resolve_dataset(tmp_path / "nothing_here")


def test_image_conversions(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path)
    gray16 = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 20)
    assert cv2.imwrite(str(root / "images" / "a.png"), gray16)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 2] = 200  # BGRA: red
    assert cv2.imwrite(str(root / "images" / "b.png"), rgba)
    ds = CocoDataset(root)
    a, b = ds.load_image(0), ds.load_image(1)
    assert a.shape == b.shape == (H, W, 3) and a.dtype == b.dtype == np.uint8
    assert (a[..., 0] == a[..., 2]).all() and a.max() > 200
    assert b[0, 0].tolist() == [200, 0, 0]


def _error(tmp_path: Path, **kw: Any) -> str:
    with pytest.raises(EdgesegError) as info:
        CocoDataset(_make_dataset(tmp_path, **kw))
    return str(info.value)


def test_missing_and_malformed_json(tmp_path: Path) -> None:
    with pytest.raises(EdgesegError, match="nope.json"):
        CocoDataset(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  {"id": 1,}]}')
    with pytest.raises(EdgesegError, match=r"bad.json: not valid JSON: .* line 2 column"):
        CocoDataset(bad)


@pytest.mark.parametrize("kw, problem", [
    ({"drop": ("categories",)}, "missing top-level key(s): 'categories'"),
    ({"images": []}, "contains no images"),
    ({"anns": [{"id": 5, "image_id": 99, "category_id": 1, "segmentation": []}]}, "unknown image_id 99"),
    ({"anns": [{"id": 5, "image_id": 3, "category_id": 2, "segmentation": []}]}, "unknown category_id 2"),
    ({"anns": [{"id": 17, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 5, 5]]}]},
     "annotation 17 (image 3): polygon with 2 points, need at least 3"),
    ({"anns": [{"id": 5, "image_id": 3, "category_id": 1, "segmentation": {"size": [1, 1], "counts": "x"}}]},
     "does not match the image size"),
])
def test_validation_errors(tmp_path: Path, kw: dict[str, Any], problem: str) -> None:
    message = _error(tmp_path, **kw)
    assert message.startswith(str(tmp_path / "annotations.json") + ": ")
    assert problem in message


def test_missing_image_files(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path)
    (root / "images" / "b.png").unlink()
    with pytest.raises(EdgesegError, match=r"annotations.json: image file .*b.png does not exist \(1 of 2"):
        CocoDataset(root)


def test_images_without_annotations_are_allowed(tmp_path: Path) -> None:
    ds = CocoDataset(_make_dataset(tmp_path, anns=[]))
    assert len(ds) == 2 and ds.load_targets(0)[0].shape == (0, H, W)


def test_bad_image_files(tmp_path: Path) -> None:
    ds = CocoDataset(_make_dataset(tmp_path))
    a, b = ds.records[0]["file_name"], ds.records[1]["file_name"]
    png = b.read_bytes()
    a.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(EdgesegError, match=r"a.png: cannot decode image \(corrupt or truncated\)"):
        ds.load_image(0)
    b.write_bytes(png[: len(png) // 2])
    with pytest.raises(EdgesegError, match=r"b.png: cannot decode image \(truncated file\)"):
        ds.load_image(1)
    _write_png(b, np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(EdgesegError, match=r"b.png: image is 64x49 \(WxH\) but annotations.json says 64x48"):
        ds.load_image(1)
    b.unlink()
    with pytest.raises(EdgesegError, match="b.png: image file not found"):
        ds.load_image(1)


@pytest.mark.parametrize("field, value, message", [
    ("segmentation", [[1, 1, float("nan"), 1, 20, 20]], "NaN or infinite"),
    ("segmentation", [[1, 1, 1e30, 1, 20, 20]], "far outside the 64x48 image"),
    ("segmentation", [[1, 1, float("inf"), 1, 20, 20]], "NaN or infinite"),
    ("bbox", [1, 1, -5, 4], "negative size"),
    ("bbox", [1, 1, float("nan"), 4], "4 finite numbers"),
    ("area", 1e30, "'area' must be a finite number"),
    ("iscrowd", 2, "'iscrowd' must be 0 or 1"),
])
def test_numbers_are_checked_before_pycocotools(tmp_path: Path, field: str, value: Any, message: str) -> None:
    ann = {"id": 5, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 20, 1, 20, 20, 1, 20]], field: value}
    root = _make_dataset(tmp_path, [ann])
    with pytest.raises(EdgesegError, match=f"annotation 5 \\(image 3\\): .*{message}") as info:
        CocoDataset(root)
    assert "\n" not in str(info.value) and str(root / "annotations.json") in str(info.value)


def test_huge_image_size_is_refused(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, images=[{"id": 3, "file_name": "a.png", "height": 10**9, "width": W}])
    with pytest.raises(EdgesegError, match="'height' and 'width' must be integers from 1 to 16384"):
        CocoDataset(root)


def test_writer_replaces_its_own_dataset_but_not_a_users_folder(tmp_path: Path) -> None:
    image = np.zeros((H, W, 3), np.uint8)
    write_coco(tmp_path / "ds", [("x.png", image)], [[]], ["a"])
    write_coco(tmp_path / "ds", [("y.png", image)], [[]], ["a"])  # edgeseg's own: replaced
    assert [p.name for p in (tmp_path / "ds" / "images").iterdir()] == ["y.png"]
    user = _make_dataset(tmp_path / "user")  # a dataset edgeseg did not write
    before = sorted(p.relative_to(user) for p in user.rglob("*"))
    with pytest.raises(EdgesegError, match="not empty and is not a dataset written by edgeseg"):
        write_coco(user, [("x.png", image)], [[]], ["a"])
    assert sorted(p.relative_to(user) for p in user.rglob("*")) == before
