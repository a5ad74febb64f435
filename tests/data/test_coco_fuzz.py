"""Fuzz: random mutations of a valid COCO file end in a clean one-line error (or a valid load),
in bounded time and memory, never a traceback, a hang or a memory blow-up."""

from __future__ import annotations

import copy
import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from edgeseg.data.coco import CocoDataset
from edgeseg.errors import EdgesegError
from edgeseg.evaluation.coco_eval import evaluate, masks_to_results
from tests.data.test_coco import _make_dataset

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NASTY = [None, True, -1, 0, 2**63, 1e30, -1e30, float("nan"), float("inf"), "", "x", [], {}, [[]], [1, 2],
         {"size": [48, 64], "counts": "!!!"}, {"size": [10**6, 10**6], "counts": [1]}]


def _paths(node, prefix=()):
    """Every (container, key) in a JSON tree."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield node, key, prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _mutate(data: dict, rng: np.random.Generator) -> dict:
    data = copy.deepcopy(data)
    for _ in range(int(rng.integers(1, 3))):
        places = list(_paths(data))
        parent, key, _ = places[int(rng.integers(len(places)))]
        action = rng.integers(3)
        if action == 0 or not isinstance(parent, dict):
            parent[key] = copy.deepcopy(NASTY[int(rng.integers(len(NASTY)))])
        elif action == 1:
            del parent[key]
        else:
            parent[key] = [parent[key]] if rng.integers(2) else {"v": parent[key]}
    return data


def test_random_mutations_end_cleanly(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path / "d", anns=[
        {"id": 1, "image_id": 3, "category_id": 1, "iscrowd": 0, "bbox": [1, 1, 19, 19], "area": 361.0,
         "segmentation": [[1, 1, 20, 1, 20, 20, 1, 20]]},
        {"id": 2, "image_id": 4, "category_id": 1, "iscrowd": 0, "area": 50,
         "segmentation": {"size": [48, 64], "counts": [100, 50, 2922]}}])
    valid = json.loads((root / "annotations.json").read_text())
    rng = np.random.default_rng(0)
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {"error": 0, "loaded": 0}
    for case in range(300):
        data = _mutate(valid, rng)
        (root / "annotations.json").write_text(json.dumps(data))
        t0 = time.perf_counter()
        try:
            ds = CocoDataset(root)
            results = []
            for i, record in enumerate(ds.records):
                masks, labels = ds.load_targets(i)
                results += masks_to_results(record["id"], masks, np.ones(len(masks)), labels, ds.category_ids)
            evaluate(ds.json_path, results, iou_type="segm")  # pycocotools rasterises the ground truth
            outcomes["loaded"] += 1
        except EdgesegError as e:
            assert "\n" not in str(e), (case, str(e))
            outcomes["error"] += 1
        assert time.perf_counter() - t0 < 5, (case, data)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss) / 1024
    assert grown_mb < 500, grown_mb  # a 1e30 coordinate or a 10^6 x 10^6 RLE would need gigabytes
    assert outcomes["error"] > 100 and outcomes["loaded"] >= 5, outcomes
