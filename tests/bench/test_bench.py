"""edgeseg bench: interleaved timing, ratios, accuracy, and the report folder."""

import json
import subprocess
import sys

import cv2
import pytest

from edgeseg.bench import run_bench, write_report
from edgeseg.errors import EdgesegError
from tests.helpers import REPO


def test_bench_checkpoint_and_bundle_with_report(tiny_model, tiny_bundle, tmp_path):
    checkpoint, data = tiny_model
    result = run_bench([checkpoint, tiny_bundle], data=str(data / "val"), frames=4, warmup=1, progress=False, boundary=True)
    torch_row, onnx_row = result["results"]
    assert (torch_row["format"], onnx_row["format"], onnx_row["precision"]) == ("pytorch", "onnx", "fp32")
    assert torch_row["speedup_model_only"] == 1.0
    assert onnx_row["speedup_end_to_end"] == pytest.approx(onnx_row["fps_end_to_end"] / torch_row["fps_end_to_end"])
    for row in result["results"]:
        assert len(row["latency_ms"]["infer"]) == 3 and row["ap"] is not None and row["metric"] == "mask AP" and row["size_mib"] > 0
        lat = row["latency_ms"]["total"]
        assert lat["median"] <= lat["p90"] <= lat["p99"]
        assert row["fps_model_only"] >= row["fps_end_to_end"]
    assert onnx_row["input_shape"] == [1, 3, 128, 128]
    # the tiny model detects (mask AP ~43 on its val set): the AP column measures something, and the
    # FP32 bundle scores what the checkpoint scores on the same 128x128 inputs
    assert torch_row["ap"] > 20 and onnx_row["ap"] == pytest.approx(torch_row["ap"], abs=0.5)
    # boundary AP takes the smaller of mask and boundary IoU: at most the mask AP, and measured
    for row in result["results"]:
        assert 0 < row["boundary_ap"] <= row["ap"] + 0.01
    system = result["system"]
    assert system["cores"] and system["cpu"] and "onnxruntime" in system["runtimes"]
    folder = write_report(tmp_path / "report", result)
    assert json.loads((folder / "report.json").read_text())["results"][1]["name"] == "onnx"
    md = (folder / "report.md").read_text()
    assert "| onnx | onnx | fp32 |" in md and "| mask AP | boundary AP |" in md
    header, rule = [line for line in md.splitlines() if line.startswith("|")][:2]
    assert header.count("|") == rule.count("|")
    assert cv2.imread(str(folder / "report.png")) is not None


def test_class_agnostic_ap_for_a_model_whose_classes_are_not_the_datasets(tiny_model, tiny_bundle, tmp_path):
    """An annotation-free model knows one class, "object": bench scores it whatever the class."""
    checkpoint, data = tiny_model
    coco = json.loads((data / "val" / "annotations.json").read_text())
    for image in coco["images"]:
        image["file_name"] = str((data / "val" / "images" / image["file_name"]).resolve())
    for category in coco["categories"]:
        category["name"] = f"thing {category['id']}"
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(coco))
    with pytest.raises(EdgesegError, match="classes differ.*--class-agnostic"):
        run_bench([tiny_bundle], data=str(renamed), frames=1, warmup=0, progress=False)
    own = run_bench([tiny_bundle], data=str(data / "val"), frames=1, warmup=0, progress=False)["results"][0]
    agnostic = run_bench([tiny_bundle], data=str(renamed), frames=1, warmup=0, progress=False,
                         class_agnostic=True)["results"][0]
    assert agnostic["metric"] == "mask AP (class-agnostic)" and own["ap"] > 20
    # the names are all that changed: scored class-agnostically, both sets give the same AP (which may
    # be below the per-class AP: a mask found as two classes is a false positive once classes pool)
    agnostic_own = run_bench([tiny_bundle], data=str(data / "val"), frames=1, warmup=0, progress=False,
                             class_agnostic=True)["results"][0]
    assert agnostic["ap"] == agnostic_own["ap"] and agnostic["ap"] > 0.5 * own["ap"]
    # edgeseg eval the same way
    from edgeseg.workflows import evaluate_model

    with pytest.raises(EdgesegError, match="differ from the model's.*--class-agnostic"):
        evaluate_model(tiny_bundle, renamed, tmp_path / "r.json")
    report = evaluate_model(tiny_bundle, renamed, tmp_path / "r.json", class_agnostic=True)
    assert report["metrics"]["AP"] * 100 == pytest.approx(agnostic["ap"], abs=0.01)  # bench rounds


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "--threads must be at least 1"),
    ({"frames": 0}, "--frames must be at least 1"),
    ({"boundary": True}, "--boundary needs --data"),
])
def test_bad_arguments(tiny_bundle, kwargs, message):
    with pytest.raises(EdgesegError, match=message):
        run_bench([tiny_bundle], progress=False, **kwargs)


def test_cli_writes_report_and_refuses_foreign_bundle(tiny_bundle, tmp_path):
    report = tmp_path / "r"
    run = subprocess.run([sys.executable, "-m", "edgeseg.cli", "bench", str(tiny_bundle), "--frames", "3",
                          "--warmup", "1", "--report", str(report), "--no-progress"], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (report / "report.md").is_file() and "FPS" in run.stderr
    # a bundle for a device this machine is not (TensorRT engine, no TensorRT here) -> one line
    meta = json.loads((tiny_bundle / "bundle.json").read_text())
    foreign = tmp_path / "jetson"
    foreign.mkdir()
    (foreign / "model.onnx").write_bytes((tiny_bundle / "model.onnx").read_bytes())
    meta["backend"] = "tensorrt"
    meta["artifacts"] = {"onnx": meta["artifacts"]["model"]}
    (foreign / "bundle.json").write_text(json.dumps(meta))
    run = subprocess.run([sys.executable, "-m", "edgeseg.cli", "bench", str(foreign), "--no-progress"], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "needs TensorRT" in run.stderr
    else:  # TensorRT here, but the bundle has no engine built on this device yet
        assert "engine build" in run.stderr


def test_peak_memory_is_the_models_own_not_the_parents(tiny_bundle):
    import numpy as np

    from edgeseg.bench.memory import peak_memory_mib

    ballast = np.ones((400, 1024, 1024), np.uint8)  # this process: > 400 MiB resident
    peak = peak_memory_mib(str(tiny_bundle))
    assert ballast.sum() and peak is not None and 20 < peak < 400


def run_bench_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeseg.cli", "bench", *map(str, args), "--no-progress"], cwd=REPO,
                          capture_output=True, text=True)


def assert_one_line(run, *needles):
    err = run.stderr.strip()
    assert run.returncode == 2 and err.startswith("error: ") and "\n" not in err, (run.returncode, err)
    assert all(n in err for n in needles), err


def test_report_folder_checked_before_measuring(tiny_bundle, tmp_path):
    assert_one_line(run_bench_cli(tmp_path / "bundel"), "bundel: no such bundle folder or checkpoint")
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.md").write_text("precious")
    assert_one_line(run_bench_cli(tiny_bundle, "--report", foreign), "docs", "not a bench report")
    afile = tmp_path / "afile"
    afile.write_text("precious")
    assert_one_line(run_bench_cli(tiny_bundle, "--report", afile / "r"), "afile", "not a folder")
    assert_one_line(run_bench_cli(tiny_bundle, "--report", afile), "afile", "not a folder")
    assert afile.read_text() == "precious" and [p.name for p in foreign.iterdir()] == ["thesis.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "docs"]


def test_report_replaces_only_a_previous_report(tiny_bundle, tmp_path):
    result = run_bench([tiny_bundle], frames=2, warmup=1, progress=False)
    folder = write_report(tmp_path / "r", result)
    (folder / "report.md").write_text("old")
    write_report(folder, result)
    assert (folder / "report.md").read_text() != "old"
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(EdgesegError, match="not a bench report"):
        write_report(folder, result)
    assert (folder / "notes.txt").read_text() == "mine"
