"""Datasets shipped inside pip packages: stardist nuclei and the imgviz VOC photo."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgeseg.data.coco import CocoDataset
from edgeseg.data.packaged import (
    MIN_PART_AREA,
    NUCLEI_TRAIN_COLUMNS,
    load_nuclei,
    split_nuclei,
    write_nuclei,
    write_voc,
)
from tests.helpers import installed

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
needs_stardist = installed("stardist", reason="stardist not installed (pip install --no-deps stardist)")
needs_imgviz = installed("imgviz", reason="imgviz not installed")


@needs_stardist
def test_nuclei_split_is_disjoint() -> None:
    image, labels = load_nuclei()
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert len(np.unique(labels[labels > 0])) == 125
    regions = split_nuclei(image, labels)
    (train_image, train_labels), (val_image, val_labels) = regions["train"], regions["val"]
    # Column bands: every pixel goes to exactly one split.
    c = NUCLEI_TRAIN_COLUMNS
    assert train_labels.shape == (512, c) and val_labels.shape == (512, 512 - c)
    np.testing.assert_array_equal(val_image[val_labels > 0], image[:, c:][val_labels > 0])
    cut = set(np.unique(labels[:, :c])) & set(np.unique(labels[:, c:])) - {0}
    n_train = len(np.unique(train_labels[train_labels > 0]))
    n_val = len(np.unique(val_labels[val_labels > 0]))
    assert n_train > 0 and n_val > 0 and n_train + n_val <= 125 + len(cut)
    for part in (train_labels, val_labels):
        assert np.unique(part[part > 0], return_counts=True)[1].min() >= MIN_PART_AREA


@needs_stardist
def test_write_nuclei(tmp_path: Path) -> None:
    write_nuclei(tmp_path)
    train, val = CocoDataset(tmp_path / "train"), CocoDataset(tmp_path / "val")
    assert train.class_names == val.class_names == ["nucleus"]
    for record in train.records:  # crops never reach into the val band
        x = int(record["file_name"].stem.split("_x")[1])
        assert x + record["width"] <= NUCLEI_TRAIN_COLUMNS
    assert len(val) == 1 and val.records[0]["width"] == 512 - NUCLEI_TRAIN_COLUMNS
    assert sum(len(train.load_targets(i)[1]) for i in range(len(train))) > 0
    assert len(val.load_targets(0)[1]) > 0
    assert val.load_image(0).shape == (512, 512 - NUCLEI_TRAIN_COLUMNS, 3)


@needs_imgviz
def test_write_voc(tmp_path: Path) -> None:
    # The npz holds 19 boolean instance masks; VOC's void/boundary pixels are already excluded
    # there, so every instance is kept.
    write_voc(tmp_path)
    spec = importlib.util.find_spec("imgviz")
    assert spec is not None and spec.submodule_search_locations
    with np.load(Path(list(spec.submodule_search_locations)[0]) / "data" / "voc" / "data.npz") as data:
        expected, expected_labels, rgb = data["masks"], data["labels"], data["rgb"]
    for split in ("train", "val"):
        ds = CocoDataset(tmp_path / split)
        assert len(ds) == 1 and len(ds.class_names) == 20 and ds.class_names[14] == "person"
        masks, labels = ds.load_targets(0)
        assert len(labels) == 19 and (labels == expected_labels - 1).all()
        for got, want in zip(masks, expected):
            assert np.count_nonzero(got & want) / np.count_nonzero(got | want) > 0.95
        np.testing.assert_array_equal(ds.load_image(0), rgb)
