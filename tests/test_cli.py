"""Bad input gets one line naming the file and the problem (exit 2), and destroys nothing."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeseg.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def trained(tiny_model):
    """(dataset, checkpoint) of the session's tiny model (tests/conftest.py); the tests copy before changing."""
    checkpoint, data = tiny_model
    return data, checkpoint


def _copy_val(data, tmp_path):
    val = tmp_path / "val"
    shutil.copytree(data / "val", val)
    return val


def test_eval_and_predict_work(trained, tmp_path):
    data, model = trained
    result = run_cli("eval", model, "--data", data / "val", "--out", tmp_path / "res.json")
    assert result.returncode == 0, result.stderr
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in result.stdout
    assert isinstance(json.loads((tmp_path / "res.json").read_text()), list)
    image = sorted((data / "val" / "images").iterdir())[0]
    result = run_cli("predict", model, image, "--out", tmp_path / "pred")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pred" / f"{image.stem}_overlay.png").is_file()
    assert isinstance(json.loads((tmp_path / "pred" / "results.json").read_text()), list)


def test_corrupt_and_truncated_images(trained, tmp_path):
    data, model = trained
    val = _copy_val(data, tmp_path)
    images = sorted((val / "images").iterdir())
    images[0].write_bytes(os.urandom(500))
    keep = tmp_path / "res.json"
    keep.write_text("precious")
    assert_one_line_error(run_cli("eval", model, "--data", val, "--out", keep), images[0].name, "decode")
    assert keep.read_text() == "precious"
    raw = images[1].read_bytes()
    images[0].write_bytes(raw)
    images[1].write_bytes(raw[: len(raw) // 2])
    assert_one_line_error(run_cli("eval", model, "--data", val), images[1].name)


def test_annotation_json_problems(trained, tmp_path):
    data, model = trained
    val = _copy_val(data, tmp_path)
    ann = val / "annotations.json"
    original = json.loads(ann.read_text())
    assert_one_line_error(run_cli("eval", model, "--data", tmp_path / "nope" / "annotations.json"), "nope")
    ann.write_text("{not json")
    assert_one_line_error(run_cli("eval", model, "--data", val), "annotations.json")
    bad = json.loads(json.dumps(original))
    bad["annotations"][0]["segmentation"] = [[1, 1, 5, 5]]
    ann.write_text(json.dumps(bad))
    assert_one_line_error(run_cli("eval", model, "--data", val), "annotations.json", "2 points")
    bad = json.loads(json.dumps(original))
    bad["images"][0]["file_name"] = "missing.png"
    ann.write_text(json.dumps(bad))
    assert_one_line_error(run_cli("eval", model, "--data", val), "missing.png")
    ann.write_text(json.dumps({**original, "images": [], "annotations": []}))
    assert_one_line_error(run_cli("eval", model, "--data", val), "no images")


def test_unknown_recipe_key_lists_valid_ones():
    assert_one_line_error(run_cli("train", "sparseinst_shapes", "--set", "solver.lr=1"), "solver.lr", "base_lr")


def test_bad_checkpoints(trained, tmp_path):
    data, model = trained
    other = tmp_path / "other.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    assert_one_line_error(run_cli("eval", other, "--data", data / "val"), "other.pt")
    state = torch.load(model, weights_only=False)
    state["model"].pop("decoder.inst_branch.cls_score.weight")
    missing = tmp_path / "missing.pt"
    torch.save(state, missing)
    assert_one_line_error(run_cli("eval", missing, "--data", data / "val"), "missing.pt",
                          "decoder.inst_branch.cls_score.weight")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(model.read_bytes()[:1000])
    assert_one_line_error(run_cli("eval", truncated, "--data", data / "val"), "truncated.pt")
    assert_one_line_error(run_cli("eval", tmp_path / "absent.pt", "--data", data / "val"), "absent.pt")


def test_training_on_corrupt_image_keeps_previous_checkpoint(trained, tmp_path):
    data, _ = trained
    broken = tmp_path / "shapes"
    shutil.copytree(data, broken)
    for image in (broken / "train" / "images").iterdir():
        image.write_bytes(b"\x89PNG broken")
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"previous checkpoint")
    from tests.helpers import tiny_overrides

    sets = sum((["--set", s] for s in tiny_overrides(broken, out, steps=2)), [])
    assert_one_line_error(run_cli("train", "sparseinst_shapes", "--no-progress", *sets), "decode")
    assert (out / "last.pt").read_bytes() == b"previous checkpoint"


def test_output_paths_are_refused_before_any_work(trained, tmp_path):
    data, model = trained
    image = sorted((data / "val" / "images").iterdir())[0]
    afile = tmp_path / "afile"
    afile.write_text("precious")
    assert_one_line_error(run_cli("predict", model, image, "--out", afile), "afile", "not a folder")
    assert_one_line_error(run_cli("predict", model, image, "--out", "."), "current folder")
    assert_one_line_error(run_cli("predict", model, image, "--out", afile / "pred"), "afile", "not a folder")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    assert_one_line_error(run_cli("predict", model, image, "--out", foreign), "mine", "not a predict output")
    assert_one_line_error(run_cli("eval", model, "--data", data / "val", "--out", foreign), "mine", "is a folder")
    assert_one_line_error(run_cli("eval", model, "--data", data / "val", "--out", afile / "r.json"), "afile")
    assert afile.read_text() == "precious" and [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]  # no temporary folders left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(trained, tmp_path):
    data, model = trained
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    image = sorted((data / "val" / "images").iterdir())[0]
    assert_one_line_error(run_cli("predict", model, image, "--out", locked / "pred"), "locked", "not writable")


def test_predict_names_overlays_uniquely_and_replaces_its_folder_whole(trained, tmp_path):
    from edgeseg.errors import EdgesegError
    from edgeseg.workflows import predict_images

    data, model = trained
    first, second = sorted((data / "val" / "images").iterdir())[:2]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = shutil.copy(first, tmp_path / "a" / "x.png"), shutil.copy(second, tmp_path / "b" / "x.png")
    out = tmp_path / "pred"
    written = predict_images(model, [a, b], out)
    assert [p.name for p in written] == ["x_overlay.png", "x-2_overlay.png"]
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "x-2_overlay.png", "x_overlay.png"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG broken")
    with pytest.raises(EdgesegError, match="broken.png"):
        predict_images(model, [a, broken], out)  # fails after one overlay: the previous run stays whole
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    predict_images(model, [b], out)
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "x_overlay.png"]  # no stale overlay
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} <= {str(b)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "broken.png", "pred"]
