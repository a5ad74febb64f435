"""COCO evaluation: golden numbers from the official API, edge cases, masks -> results round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.evaluation import (
    STAT_NAMES,
    evaluate,
    format_table,
    load_results,
    masks_to_results,
    save_results,
)
from tests.helpers import skip_or_fail


def _golden_dir() -> Path:
    override = os.environ.get("EDGESEG_GOLDEN_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "coco_eval_golden"


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_golden_stats(iou_type: str) -> None:
    golden = _golden_dir()
    if not golden.is_dir():
        skip_or_fail(f"golden COCO set not found at {golden} (set EDGESEG_GOLDEN_DIR)")
    expected = json.loads((golden / "expected_stats.json").read_text())
    report = evaluate(
        golden / expected["ground_truth"], golden / expected[iou_type]["results"], iou_type
    )
    assert report["iou_type"] == iou_type
    np.testing.assert_allclose(report["stats"], expected[iou_type]["stats"], rtol=0, atol=1e-12)
    assert list(report["metrics"]) == list(STAT_NAMES)
    assert report["summary"] == format_table(report["stats"])
    assert len(report["summary"].splitlines()) == 12


def _square(h: int, w: int, y: int, x: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y : y + size, x : x + size] = True
    return m


@pytest.fixture()
def tiny_gt() -> tuple[dict, list[tuple[int, int, np.ndarray]]]:
    """Two 64x64 images with three square objects of two categories (ids 3 and 7)."""
    from pycocotools import mask as mask_util

    h = w = 64
    objects = [
        (1, 3, _square(h, w, 5, 5, 20)),
        (1, 7, _square(h, w, 30, 30, 25)),
        (2, 3, _square(h, w, 10, 40, 16)),
    ]
    annotations = []
    for ann_id, (image_id, cat, m) in enumerate(objects, start=1):
        rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": cat,
                "segmentation": rle,
                "area": float(m.sum()),
                "bbox": [float(v) for v in mask_util.toBbox(rle)],
                "iscrowd": 0,
            }
        )
    gt = {
        "images": [{"id": i, "width": w, "height": h, "file_name": f"{i}.png"} for i in (1, 2)],
        "annotations": annotations,
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
    }
    return gt, objects


def _predict(objects, shift: int = 0) -> list[dict]:
    category_ids = [3, 7]
    results = []
    for image_id in (1, 2):
        mine = [(cat, m) for i, cat, m in objects if i == image_id]
        masks = np.stack([np.roll(m, shift, axis=1) for _, m in mine])
        labels = np.array([category_ids.index(cat) for cat, _ in mine])
        results += masks_to_results(image_id, masks, np.full(len(mine), 0.9), labels, category_ids)
    return results


def test_masks_to_results_round_trip(tiny_gt, tmp_path: Path) -> None:
    gt, objects = tiny_gt
    results = _predict(objects)
    path = tmp_path / "results.json"
    save_results(path, results)
    loaded = load_results(path)
    assert loaded == results
    assert loaded[0]["bbox"] == [5.0, 5.0, 20.0, 20.0]
    assert {r["category_id"] for r in loaded} == {3, 7}
    for iou_type in ("segm", "bbox"):
        assert evaluate(gt, path, iou_type)["metrics"]["AP"] == pytest.approx(1.0)
    shifted = evaluate(gt, _predict(objects, shift=6), "segm")
    assert shifted["metrics"]["AP"] < 1.0


def test_masks_to_results_empty_and_bad_label() -> None:
    assert masks_to_results(1, np.zeros((0, 8, 8), bool), [], [], [1]) == []
    with pytest.raises(EdgesegError, match="label 2"):
        masks_to_results(1, np.ones((1, 8, 8), bool), [0.5], [2], [1, 5])


def test_empty_results(tiny_gt) -> None:
    gt, _ = tiny_gt
    report = evaluate(gt, [], "segm")
    assert report["stats"] == [0.0] * 12
    assert report["metrics"] == dict.fromkeys(STAT_NAMES, 0.0)
    assert "no detections" in report["summary"].lower()


def test_unknown_image_id(tiny_gt) -> None:
    gt, objects = tiny_gt
    results = _predict(objects)
    results[0] = {**results[0], "image_id": 999}
    with pytest.raises(EdgesegError, match="999"):
        evaluate(gt, results, "segm")


def test_results_do_not_get_mutated(tiny_gt) -> None:
    gt, objects = tiny_gt
    results = _predict(objects)
    before = json.dumps(results)
    evaluate(gt, results, "segm")
    assert json.dumps(results) == before


def test_load_results_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgesegError, match="not found"):
        load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(EdgesegError, match="not valid JSON"):
        load_results(bad)
    bad.write_text('{"a": 1}')
    with pytest.raises(EdgesegError, match="list"):
        load_results(bad)


def test_quiet_prints_nothing(tiny_gt, capsys) -> None:
    gt, objects = tiny_gt
    evaluate(gt, _predict(objects), "segm", quiet=True)
    assert capsys.readouterr().out == ""
    report = evaluate(gt, _predict(objects), "segm", quiet=False)
    assert report["summary"] in capsys.readouterr().out


def test_box_results_use_the_detections_boxes():
    """A model with a box head is evaluated on its boxes, not on its masks' tight boxes (the
    Transfiner and its coarse twin share detector weights, and their box AP differed); a mask-only
    model's boxes are its masks' tight boxes, so its results do not change."""
    from edgeseg.evaluation.coco_eval import detections_to_results
    from edgeseg.postprocess.detections import Detections

    masks = np.zeros((1, 80, 100), bool)
    masks[0, 30:50, 15:25] = True  # tight box x 15-25, y 30-50
    head = Detections(np.array([[10, 20, 30, 60]], np.float32), np.array([0.9], np.float32), np.array([0]), masks)
    assert detections_to_results(1, head, [7])[0]["bbox"] == [10.0, 20.0, 20.0, 40.0]
    tight = Detections(np.array([[15, 30, 25, 50]], np.float32), np.array([0.9], np.float32), np.array([0]), masks)
    assert detections_to_results(1, tight, [7])[0]["bbox"] == masks_to_results(1, masks, [0.9], [0], [7])[0]["bbox"]
