"""`edgeseg data points`: PointSup's protocol (uniform in the box, labels from the mask, masks
dropped) and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.data.coco import CocoDataset
from edgeseg.data.masks import decode_segmentation
from edgeseg.data.points import sample_points, write_point_annotations
from edgeseg.errors import EdgesegError
from tests.data.test_coco import H, W, _make_dataset

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
SQUARE = [[4, 4, 40, 4, 40, 40, 4, 40]]


def _source(root: Path) -> Path:
    anns = [{"id": 1, "image_id": 3, "category_id": 1, "iscrowd": 0, "segmentation": SQUARE},
            {"id": 2, "image_id": 3, "category_id": 1, "iscrowd": 0, "segmentation": [[44, 30, 60, 30, 52, 46]],
             "bbox": [44, 30, 16, 16], "area": 128},
            {"id": 3, "image_id": 4, "category_id": 1, "iscrowd": 1, "segmentation": SQUARE}]
    return _make_dataset(root, anns)


def test_points_are_uniform_in_the_box_and_labelled_by_the_mask() -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[10:30, 20:30] = 1  # the left half of the box [20, 10, 20, 20] (x, y, w, h)
    coords, labels = sample_points(mask, [20, 10, 20, 20], 4000, np.random.default_rng(0))
    x, y = coords.T
    assert x.min() >= 20 and x.max() <= 40 and y.min() >= 10 and y.max() <= 30
    assert np.all(x % 1 == 0.5) and np.all(y % 1 == 0.5)  # pixel centres
    np.testing.assert_array_equal(labels, mask[(y - 0.5).astype(int), (x - 0.5).astype(int)])
    # uniform: each quarter of the box gets a quarter of the points, half of them on the mask
    quarters = np.histogram2d(x, y, bins=2, range=[[20, 40], [10, 30]])[0] / len(x)
    np.testing.assert_allclose(quarters, 0.25, atol=0.03)
    assert abs(labels.mean() - 0.5) < 0.03
    # a box overshooting the image is clipped to it
    coords, _ = sample_points(mask, [W - 5, H - 5, 30, 30], 200, np.random.default_rng(1))
    assert coords[:, 0].max() < W and coords[:, 1].max() < H


def test_written_file_reads_as_points_supervision(tmp_path: Path) -> None:
    source = _source(tmp_path / "src")
    out = tmp_path / "elsewhere" / "p10.json"
    assert write_point_annotations(source, out, 10, seed=3) == [out]
    data = json.loads(out.read_text())
    assert all("segmentation" not in a and "area" not in a for a in data["annotations"])
    assert data["info"]["edgeseg_points"]["points_per_instance"] == 10
    crowd = data["annotations"][2]
    assert crowd["iscrowd"] == 1 and "point_coords" not in crowd  # a crowd region keeps its box only
    ds = CocoDataset(out)  # images are found from the new file's folder
    assert ds.supervision == "points" and ds.load_image(0).shape == (H, W, 3)
    got = ds.load_instances(0)
    assert got["points"].shape == (2, 10, 2)
    original = json.loads((source / "annotations.json").read_text())["annotations"]
    for k in range(2):
        mask = decode_segmentation(original[k]["segmentation"], H, W)
        x, y = (got["points"][k] - 0.5).astype(int).T
        np.testing.assert_array_equal(got["point_labels"][k], mask[y, x])
    assert got["boxes"][1].tolist() == [44, 30, 60, 46]  # a written bbox is kept; otherwise the mask's
    again = write_point_annotations(source, tmp_path / "again.json", 10, seed=3)[0]
    assert json.loads(again.read_text())["annotations"] == data["annotations"]  # same seed, same points


def test_versions_draw_different_points(tmp_path: Path) -> None:
    source = _source(tmp_path / "src")
    paths = write_point_annotations(source, tmp_path / "pts.json", 5, seed=0, versions=2)
    assert [p.name for p in paths] == ["pts_v1.json", "pts_v2.json"]
    v1, v2 = (json.loads(p.read_text())["annotations"][0]["point_coords"] for p in paths)
    assert v1 != v2


@pytest.mark.parametrize("case, problem", [
    ("overwrite", "is the source annotation file; choose another name (the masks would be lost)"),
    ("not_json", "expected a .json file name for the point annotations"),
    ("boxes_only", "annotation 9 (image 3) has no 'segmentation': points are labelled from masks"),
    ("zero_points", "--points 0: must be at least 1"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path: Path, case: str, problem: str) -> None:
    source = _source(tmp_path / "src")
    out, count = tmp_path / "out.json", 10
    if case == "overwrite":
        out = source / "annotations.json"
    elif case == "not_json":
        out = tmp_path / "out"
    elif case == "boxes_only":
        source = _make_dataset(tmp_path / "boxes", [{"id": 9, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5]}])
    else:
        count = 0
    before = (source / "annotations.json").read_bytes()
    with pytest.raises(EdgesegError) as info:
        write_point_annotations(source, out, count)
    assert problem in str(info.value) and "\n" not in str(info.value)
    assert (source / "annotations.json").read_bytes() == before
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out").exists()
