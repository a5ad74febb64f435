"""report.png: a matplotlib figure (axes, ticks, labels that do not overlap) where matplotlib is installed, the
OpenCV drawing where it is not."""

import io
import sys

import cv2
import numpy as np
import pytest

from edgeseg.bench import report, write_report

NAMES = ["best.pt", "onnx_fp32", "onnx_int8", "openvino_fp32", "openvino_int8", "tflite_fp32", "tflite_int8",
         "a_model_with_a_rather_long_name_int8"]


def _percentiles(ms: float) -> dict:
    return {"median": ms, "p90": ms * 1.1, "p99": ms * 1.3}


def synthetic_result(n: int, ap: bool = True) -> dict:
    """What measure._results returns, for n models; the INT8 rows score alike and run alike, so their points crowd."""
    rows = []
    for i in range(n):
        pre, infer, post = 2.0 + 0.1 * i, 40.0 / (1 + i % 4) + 0.3 * i, 3.0 + 0.2 * (i % 2)
        total = pre + infer + post
        rows.append({
            "model": f"/runs/x/{NAMES[i]}", "name": NAMES[i], "format": "onnx",
            "precision": "int8" if i % 2 else "fp32",
            "size_mib": 9.5, "peak_memory_mib": 300.0, "ap": (42.0 - 0.05 * (i // 2)) if ap else None,
            "metric": "mask AP",
            "latency_ms": {"pre": _percentiles(pre), "infer": _percentiles(infer), "post": _percentiles(post),
                           "total": _percentiles(total)},
            "fps_model_only": 1000 / infer, "fps_end_to_end": 1000 / total,
            "input_shape": [1, 3, 256, 448], "score_threshold": 0.3,
        })
    for row in rows:
        row["speedup_model_only"] = row["fps_model_only"] / rows[0]["fps_model_only"]
        row["speedup_end_to_end"] = row["fps_end_to_end"] / rows[0]["fps_end_to_end"]
    system = {"cpu": "test cpu", "cores": 2, "machine": "x86_64", "os": "Linux", "threads": 2, "load_average": 0.1,
              "load_average_after": 0.2, "runtimes": {"onnxruntime": "1.0"}, "board": {}, "clocks": {},
              "temperatures_c": {}, "cpu_flags": ["avx2"], "frame_sizes": ["1280x720"]}
    return {"system": system, "data": "val", "frames": 10, "warmup": 2, "results": rows}


def _labels(fig):
    scatter = fig.axes[1]
    return [t for t in scatter.texts if t.get_gid() == "label"]


@pytest.mark.parametrize("n", [1, 3, 8])
def test_matplotlib_plot_labels_do_not_overlap(n):
    pytest.importorskip("matplotlib")
    from matplotlib.text import Text

    result = synthetic_result(n)
    fig = report.figure(result)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)  # as render_png does; draws the figure
    img = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == 1200 and 450 <= img.shape[0] <= 600 and img.std() > 10
    renderer = fig.canvas.get_renderer()
    labels = _labels(fig)
    assert sorted(t.get_text() for t in labels) == sorted(report._short(r["name"], 24) for r in result["results"])
    frame = fig.axes[1].get_window_extent(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text alone, not its leader line
    for i, a in enumerate(boxes):
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    bars, scatter = fig.axes
    assert bars.get_xlabel() == "median latency per frame (ms)" and len(bars.get_xticks()) > 2
    assert [t.get_text() for t in bars.get_yticklabels()][0] == "best.pt"
    assert "mask AP" in scatter.get_ylabel() and "FPS" in scatter.get_xlabel() and len(scatter.get_yticks()) > 2


def test_matplotlib_plot_without_ap_says_so(tmp_path):
    pytest.importorskip("matplotlib")
    fig = report.figure(synthetic_result(3, ap=False))
    assert not _labels(fig)
    assert any("not measured" in t.get_text() for t in fig.axes[1].texts)
    folder = write_report(tmp_path / "r", synthetic_result(3, ap=False))
    assert cv2.imread(str(folder / "report.png")).shape[:2] == (round(fig.get_figheight() * fig.dpi), 1200)
    assert "Plot drawn with matplotlib" in (folder / "report.md").read_text()


def test_opencv_fallback_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = synthetic_result(3)
    png, renderer_name = report.render_png(result)
    assert renderer_name.startswith("OpenCV")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == report.plot(result).shape
    folder = write_report(tmp_path / "r", result)
    assert "Plot drawn with OpenCV" in (folder / "report.md").read_text()
    assert cv2.imread(str(folder / "report.png")).shape == img.shape
