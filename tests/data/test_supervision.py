"""Supervision kinds (masks, boxes, points, none): the reader, the transforms and the training refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgeseg.data.coco import CocoDataset
from edgeseg.data.image_folder import ImageFolder, open_dataset
from edgeseg.data.transforms import augment_instances, crop_instances, flip_instances, resize_instances
from edgeseg.errors import EdgesegError
from tests.data.test_coco import H, W, _make_dataset
from tests.helpers import require

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
SQUARE = [[1, 1, 20, 1, 20, 20, 1, 20]]


def ann(aid: int = 5, **fields: Any) -> dict[str, Any]:
    return {"id": aid, "image_id": 3, "category_id": 1, "iscrowd": 0, **fields}


def test_masks_give_masks_and_boxes(tmp_path: Path) -> None:
    ds = CocoDataset(_make_dataset(tmp_path, [ann(1, segmentation=SQUARE),
                                              ann(2, segmentation=SQUARE, bbox=[30, 2, 10, 8])]))
    assert ds.supervision == "masks" and ds.gives == ("masks", "boxes", "none")
    got = ds.load_instances(0)
    assert sorted(got) == ["boxes", "labels", "masks"] and got["boxes"].dtype == np.float32
    ys, xs = np.nonzero(got["masks"][0])  # no bbox: the mask's own box
    assert got["boxes"][0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert got["boxes"][1].tolist() == [30, 2, 40, 10]  # a bbox is taken as written, xywh -> xyxy
    masks, labels = ds.load_targets(0)
    np.testing.assert_array_equal(masks, got["masks"])
    assert labels.tolist() == [0, 0]


def test_boxes_alone_give_boxes(tmp_path: Path) -> None:
    anns = [ann(1, bbox=[2, 3, 10, 20]), ann(2, bbox=[50, 40, 30, 20]), ann(3, bbox=[5, 5, 0, 4]),
            ann(4, bbox=[1, 1, 5, 5], iscrowd=1)]
    ds = CocoDataset(_make_dataset(tmp_path, anns))
    assert ds.supervision == "boxes" and ds.gives == ("boxes", "none")
    got = ds.load_instances(0)
    assert sorted(got) == ["boxes", "labels"]
    # clipped to the 64x48 image; the empty box and the crowd box are left out
    assert got["boxes"].tolist() == [[2, 3, 12, 23], [50, 40, 64, 48]] and got["labels"].tolist() == [0, 0]
    assert ds.load_instances(1)["boxes"].shape == (0, 4)
    with pytest.raises(EdgesegError, match=r"annotations.json: has boxes annotations, not masks$"):
        ds.load_targets(0)


def test_points_give_points_and_boxes(tmp_path: Path) -> None:
    anns = [ann(1, bbox=[2, 3, 10, 20], point_coords=[[3.5, 4.25], [0, 48]], point_labels=[1, 0]),
            ann(2, bbox=[30, 3, 10, 20], point_coords=[[64, 0.5], [31, 4], [35, 9.5]], point_labels=[0, 1, 1])]
    ds = CocoDataset(_make_dataset(tmp_path, anns))
    assert ds.supervision == "points" and ds.gives == ("points", "boxes", "none")
    got = ds.load_instances(0)
    assert sorted(got) == ["boxes", "labels", "point_labels", "points"]
    assert got["points"].dtype == np.float32 and got["points"].shape == (2, 3, 2)
    assert got["points"][0, :2].tolist() == [[3.5, 4.25], [0, 48]]  # pixels, as written
    assert got["point_labels"].tolist() == [[1, 0, -1], [0, 1, 1]]  # -1 pads the shorter list
    assert got["boxes"].tolist() == [[2, 3, 12, 23], [30, 3, 40, 23]]
    empty = ds.load_instances(1)
    assert empty["points"].shape == (0, 0, 2) and empty["point_labels"].shape == (0, 0)


def test_masks_with_points_give_both(tmp_path: Path) -> None:
    ds = CocoDataset(_make_dataset(tmp_path, [ann(segmentation=SQUARE, point_coords=[[5, 5]], point_labels=[1])]))
    assert ds.supervision == "masks" and ds.gives == ("masks", "points", "boxes", "none")
    assert sorted(ds.load_instances(0)) == ["boxes", "labels", "masks", "point_labels", "points"]


def test_mixed_annotations_give_what_all_give(tmp_path: Path) -> None:
    anns = [ann(1, segmentation=SQUARE), ann(7, bbox=[2, 3, 10, 20]), ann(8, bbox=[1, 1, 4, 4], iscrowd=1)]
    ds = CocoDataset(_make_dataset(tmp_path, anns))
    assert ds.supervision == "boxes" and ds.supervision_note == "annotation 7 (image 3) has no 'segmentation'"
    got = ds.load_instances(0)
    assert sorted(got) == ["boxes", "labels"] and len(got["boxes"]) == 2  # the mask's box, the bbox
    only_crowd_lacks = CocoDataset(_make_dataset(tmp_path / "c", [anns[0], anns[2]]))
    assert only_crowd_lacks.supervision == "masks"  # crowd annotations are no training targets


def test_a_file_without_annotations_counts_as_masks(tmp_path: Path) -> None:
    ds = CocoDataset(_make_dataset(tmp_path, []))
    assert ds.supervision == "masks" and ds.load_instances(0)["masks"].shape == (0, H, W)


@pytest.mark.parametrize("fields, problem", [
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, 4], [70, 5]], "point_labels": [1, 0]},
     "point 1 [70, 5] lies outside the 64x48 image"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, -0.5]], "point_labels": [1]},
     "point 0 [3, -0.5] lies outside the 64x48 image"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, 4]], "point_labels": [2]}, "'point_labels' must be 0 or 1, got 2"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, 4]], "point_labels": [True]}, "must be 0 or 1, got True"),
    ({"bbox": [2, 2, -9, 9]}, "'bbox' has a negative size -9x9"),
    ({"point_coords": [[3, 4]], "point_labels": [1]}, "a points annotation needs a 'bbox'"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, 4], [5, 6]], "point_labels": [1]},
     "'point_labels' must be a list with one label per point (2)"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, 4]]}, "'point_coords' and 'point_labels' must come together"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [[3, float("nan")]], "point_labels": [1]}, "[x, y] pairs of finite"),
    ({"bbox": [2, 2, 9, 9], "point_coords": [], "point_labels": []}, "non-empty list of [x, y]"),
    ({}, "needs a 'segmentation', a 'bbox' or 'point_coords' with 'point_labels'"),
])
def test_bad_annotations_are_one_line_errors(tmp_path: Path, fields: dict[str, Any], problem: str) -> None:
    root = _make_dataset(tmp_path, [ann(**fields)])
    with pytest.raises(EdgesegError) as info:
        CocoDataset(root)
    message = str(info.value)
    assert message.startswith(f"{root / 'annotations.json'}: annotation 5 (image 3): ") and problem in message
    assert "\n" not in message


def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), np.full((H, W + k, 3), k, np.uint8))


def test_plain_image_folder_gives_none(tmp_path: Path) -> None:
    _write_images(tmp_path / "flat", ["b.png", "a.jpg", "notes.txt.png"])
    (tmp_path / "flat" / "readme.txt").write_text("not an image")
    ds = open_dataset(tmp_path / "flat")
    assert isinstance(ds, ImageFolder) and ds.supervision == "none" and ds.gives == ("none",)
    assert ds.class_names == [] and len(ds) == 3
    assert [r["file_name"].name for r in ds.records] == ["a.jpg", "b.png", "notes.txt.png"]
    assert ds.load_image(1).shape == (H, W, 3) and ds.load_instances(0)["labels"].shape == (0,)
    _write_images(tmp_path / "nested" / "images" / "sub", ["x.png"])
    assert len(open_dataset(tmp_path / "nested")) == 1
    assert isinstance(open_dataset(_make_dataset(tmp_path / "coco")), CocoDataset)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgesegError, match=r"empty: not a dataset folder: annotations.json not found"):
        open_dataset(tmp_path / "empty")


def _instances() -> dict[str, np.ndarray]:
    masks = np.zeros((2, H, W), np.uint8)
    masks[0, 10:20, 4:12] = 1
    masks[1, 30:40, 50:60] = 1
    return {"labels": np.array([0, 1]), "masks": masks,
            "boxes": np.array([[4, 10, 12, 20], [50, 30, 60, 40]], np.float32),
            "points": np.array([[[4.5, 10.5], [11.5, 19.5]], [[50.5, 30.5], [0, 0]]], np.float32),
            "point_labels": np.array([[1, 0], [1, -1]])}


def _assert_points_on_masks(out: dict[str, np.ndarray]) -> None:
    """A point on an instance (label 1) still falls on its mask's pixel."""
    for mask, points, labels in zip(out["masks"], out["points"], out["point_labels"]):
        for (x, y), label in zip(points, labels):
            if label == 1:
                assert mask[int(y), int(x)], (x, y)


def test_flip_mirrors_boxes_and_points_with_the_masks() -> None:
    image, out = flip_instances(np.zeros((H, W, 3), np.uint8), _instances())
    assert out["boxes"].tolist() == [[52, 10, 60, 20], [4, 30, 14, 40]]
    assert out["points"][0].tolist() == [[59.5, 10.5], [52.5, 19.5]]  # x -> W - x
    for mask, box in zip(out["masks"], out["boxes"]):
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    _assert_points_on_masks(out)


def test_resize_scales_boxes_and_points() -> None:
    image, out = resize_instances(np.zeros((H, W, 3), np.uint8), _instances(), (96, 32))
    assert image.shape == (96, 32, 3) and out["masks"].shape == (2, 96, 32)
    assert out["boxes"].tolist() == [[2, 20, 6, 40], [25, 60, 30, 80]] and out["boxes"].dtype == np.float32
    assert out["points"][0].tolist() == [[2.25, 21], [5.75, 39]]
    _assert_points_on_masks(out)


def test_crop_shifts_clips_drops_and_ignores_points_that_leave() -> None:
    image, out = crop_instances(np.zeros((H, W, 3), np.uint8), _instances(), (12, 6, 20, 30))  # y0, x0, h, w
    assert image.shape == (20, 30, 3) and out["labels"].tolist() == [0]  # instance 1 left the crop
    assert out["boxes"].tolist() == [[0, 0, 6, 8]]
    assert out["points"][0].tolist() == [[-1.5, -1.5], [5.5, 7.5]]
    assert out["point_labels"].tolist() == [[-1, 0]]  # the point that left is ignored
    boxes_only = {k: _instances()[k] for k in ("labels", "boxes")}
    _, out = crop_instances(np.zeros((H, W, 3), np.uint8), boxes_only, (0, 0, 25, 30))
    assert out["labels"].tolist() == [0]  # without masks, a box that vanishes drops its instance


def test_augment_moves_every_field_and_keeps_the_random_stream() -> None:
    args = dict(min_sizes=[32, 64, 96], max_size=120, flip=True, crop_size=(20, 40))
    for seed in range(40):
        image, out = augment_instances(np.zeros((H, W, 3), np.uint8), _instances(), np.random.default_rng(seed), **args)
        masks_only = {k: _instances()[k] for k in ("labels", "masks")}
        same_image, same = augment_instances(np.zeros((H, W, 3), np.uint8), masks_only,
                                             np.random.default_rng(seed), **args)
        assert image.shape == same_image.shape and sorted(out) == sorted(_instances())
        np.testing.assert_array_equal(out["masks"], same["masks"])
        np.testing.assert_array_equal(out["labels"], same["labels"])
        for mask, box in zip(out["masks"], out["boxes"]):  # boxes stay around their masks
            ys, xs = np.nonzero(mask)
            assert box[0] - 1 <= xs.min() and xs.max() + 1 <= box[2] + 1, (seed, box)
            assert box[1] - 1 <= ys.min() and ys.max() + 1 <= box[3] + 1, (seed, box)


def test_collate_passes_every_field() -> None:
    torch = require("torch")
    from edgeseg.engine.data import collate

    instances = _instances()
    images, targets = collate([(np.zeros((H, W, 3), np.float32), instances)])
    assert images.shape == (1, 3, 64, 64) and targets[0]["masks"].shape == (2, 64, 64)
    assert sorted(targets[0]) == sorted(instances) and targets[0]["labels"].dtype == torch.int64
    assert targets[0]["points"].dtype == torch.float32 and targets[0]["point_labels"].tolist() == [[1, 0], [1, -1]]


def test_training_refuses_a_supervision_the_model_cannot_use(tmp_path: Path, monkeypatch) -> None:
    require("torch")
    from edgeseg.engine.data import training_dataset
    from edgeseg.models.registry import METHODS, Method, get_method

    boxes = _make_dataset(tmp_path / "boxes", [ann(1, segmentation=SQUARE), ann(7, bbox=[2, 3, 10, 20])])
    with pytest.raises(EdgesegError) as info:
        training_dataset(boxes, "sparseinst")
    assert str(info.value) == (f"{boxes / 'annotations.json'}: has boxes annotations (annotation 7 (image 3) "
                               "has no 'segmentation'), but sparseinst trains with masks or points")
    _write_images(tmp_path / "plain", ["a.png"])
    with pytest.raises(EdgesegError, match=r"plain: has no annotations, but sparseinst trains with masks or points$"):
        training_dataset(tmp_path / "plain", "sparseinst")
    assert training_dataset(_make_dataset(tmp_path / "masks"), "sparseinst").supervision == "masks"
    points = _make_dataset(tmp_path / "points", [ann(1, bbox=[2, 3, 10, 20], point_coords=[[3, 4]], point_labels=[1])])
    assert training_dataset(points, "sparseinst").supervision == "points"
    get_method("sparseinst")  # the table is filled before the stand-in joins it
    masks_only = Method(name="masks_only", config=get_method("sparseinst").config, model="",
                        output_kind="query_masks", supervision=("masks",))
    monkeypatch.setitem(METHODS, "masks_only", masks_only)
    with pytest.raises(EdgesegError) as info:
        training_dataset(points, "masks_only")
    assert str(info.value) == f"{points / 'annotations.json'}: has points annotations, but masks_only trains with masks"


def test_point_augmentation_draws_labelled_points_per_sample() -> None:
    from edgeseg.data.transforms import subsample_points

    instances = _instances()
    out = subsample_points(instances, 3, np.random.default_rng(0))
    assert out["points"].shape == (2, 3, 2) and out["point_labels"].shape == (2, 3)
    assert (out["point_labels"] >= 0).all()  # padding (-1) is never drawn
    np.testing.assert_array_equal(out["points"][1], np.repeat(instances["points"][1, :1], 3, axis=0))
    np.testing.assert_array_equal(out["masks"], instances["masks"])
    assert subsample_points(instances, 0, np.random.default_rng(0)) is instances
    draws = {tuple(subsample_points(instances, 1, np.random.default_rng(s))["point_labels"][0]) for s in range(20)}
    assert draws == {(0,), (1,)}


def test_a_point_on_one_object_is_a_negative_of_every_box_it_lies_in() -> None:
    from edgeseg.data.transforms import neighbour_negatives

    # object 0's box holds object 1 (its occluder) and object 1's positive point (5, 5);
    # object 1's box [4, 4, 8, 8] holds object 0's positive (6, 6) but not its negative (7, 7) label 0;
    # object 2 lies far away and gains nothing; its own negative stays its own
    instances = {"labels": np.array([1, 2, 3]),
                 "boxes": np.array([[0, 0, 10, 10], [4, 4, 8, 8], [40, 40, 50, 50]], np.float32),
                 "points": np.array([[[6, 6], [7, 7]], [[5, 5], [20, 20]], [[45, 45], [41, 41]]], np.float32),
                 "point_labels": np.array([[1, 0], [1, -1], [1, 0]])}
    out = neighbour_negatives(instances)
    assert out["point_labels"].tolist() == [[1, 0, 0], [1, -1, 0], [1, 0, -1]]
    assert out["points"][0, 2].tolist() == [5, 5] and out["points"][1, 2].tolist() == [6, 6]
    np.testing.assert_array_equal(out["points"][:, :2], instances["points"])
    single = {k: v[:1] for k, v in instances.items()}
    assert neighbour_negatives(single) is single


def test_collate_pads_points_to_the_batch_widest_as_ignored() -> None:
    require("torch")
    from edgeseg.engine.data import collate

    wide = {**_instances(), "points": np.zeros((2, 5, 2), np.float32), "point_labels": np.ones((2, 5), np.int64)}
    _, targets = collate([(np.zeros((H, W, 3), np.float32), _instances()), (np.zeros((H, W, 3), np.float32), wide)])
    assert targets[0]["points"].shape == (2, 5, 2) and targets[0]["point_labels"].tolist() == [[1, 0, -1, -1, -1],
                                                                                             [1, -1, -1, -1, -1]]
    assert targets[1]["point_labels"].tolist() == wide["point_labels"].tolist()
