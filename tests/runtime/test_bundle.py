"""bundle.json is checked before anything in it is used: wrong types, unknown layouts, paths out
of the bundle and random mutations all end in one line naming the file."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.runtime import Predictor, read_bundle
from tests.data.test_coco_fuzz import _mutate


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    return out, json.loads((out / "bundle.json").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(artifacts="model.onnx"), "'artifacts' must be an object"),
    (lambda m: m["input"].update(layout="CHWN"), "'input.layout' must be one of NCHW, NHWC"),
    (lambda m: m["input"].update(height=100), "'input.height' must be a multiple of 32"),
    (lambda m: m["input"].update(width="128"), "'input.width' must be a multiple of 32"),
    (lambda m: m.update(class_names="circle"), "'class_names' must be a non-empty list of strings"),
    (lambda m: m["postprocess"].update(mask_threshold=float("nan")), "'postprocess.mask_threshold' must be a number"),
    (lambda m: m["postprocess"].update(max_detections=10**9), "'postprocess.max_detections' must be an integer"),
    (lambda m: m["artifacts"]["model"].update(file="../../etc/passwd"), "must be a plain file name inside the bundle"),
    (lambda m: m.update(target={"runtime": {"threads": 0}}), "'target.runtime' needs an integer 'threads'"),
    (lambda m: m.update(precision="int4"), "'precision' must be fp32, fp16 or int8"),
])
def test_bad_metadata_is_one_line(bundle_copy, change, message):
    folder, meta = bundle_copy
    change(meta)
    (folder / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(EdgesegError, match=message) as info:
        read_bundle(folder)
    assert str(info.value).startswith(str(folder / "bundle.json")) and "\n" not in str(info.value)


def test_random_mutations_end_cleanly(bundle_copy):
    folder, valid = bundle_copy
    image = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    outcomes = {"error": 0, "ran": 0}
    for case in range(150):
        meta = _mutate(valid, rng)
        (folder / "bundle.json").write_text(json.dumps(meta))
        t0 = time.perf_counter()
        try:
            Predictor(folder, threads=1)(image)
            outcomes["ran"] += 1
        except EdgesegError as e:
            assert "\n" not in str(e), (case, str(e))
            outcomes["error"] += 1
        assert time.perf_counter() - t0 < 10, (case, meta)
    assert outcomes["error"] > 20 and outcomes["ran"] > 5, outcomes


def test_bundles_from_before_output_kinds_still_run(bundle_copy):
    folder, meta = bundle_copy
    meta["outputs"] = {"scores": "[1, N, C] sqrt(sigmoid(class) * sigmoid(objectness))",
                       "masks": "[1, N, H/4, W/4] mask logits at stride 4 of the input"}  # as written before
    (folder / "bundle.json").write_text(json.dumps(meta))
    predictor = Predictor(folder, threads=1)
    assert predictor.kind.name == "query_masks"
    image = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    dets = predictor(image)
    assert dets.masks is not None and dets.boxes.shape == (len(dets), 4)


def test_outputs_the_model_lacks_say_to_re_export(bundle_copy):
    folder, meta = bundle_copy
    meta["outputs"]["artifact_names"] = {"scores": "logits"}  # e.g. an older TFLite bundle's unnamed outputs
    (folder / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(EdgesegError, match="bundle.json: the model returns logits, masks, not the scores of a "
                                           "query_masks bundle; re-export it"):
        Predictor(folder, threads=1).raw(np.zeros((1, 3, 128, 128), np.float32))
