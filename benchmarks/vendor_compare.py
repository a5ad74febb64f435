"""edgeseg's inference against the runtimes' own tools on the same artefact and input, interleaved.

    python benchmarks/vendor_compare.py BUNDLE [BUNDLE ...] [--frame FILE|--frame-size 1280x720]
        [--threads 2] [--rounds 5] [--seconds 6]

Per bundle, on one network input prepared from a camera-sized frame exactly as edgeseg prepares it:
- ONNX Runtime: edgeseg's session vs a bare ``InferenceSession`` (defaults, same threads), in
  alternating blocks;
- OpenVINO: edgeseg's session vs ``benchmark_app`` (-api sync, one request and one stream, the
  shape of the input, same threads and precision hint), in alternating blocks (another process);
- LiteRT: edgeseg's session vs a bare ``Interpreter`` (same threads), in alternating blocks.
Prints medians (ms) and edgeseg / vendor (< 1: edgeseg faster), then the CPU and its flags.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from edgeseg.bench.measure import CAMERA_HW
from edgeseg.bench.system import system_info
from edgeseg.runtime import Predictor


def frame(args) -> np.ndarray:
    if args.frame:
        import cv2

        capture = cv2.VideoCapture(args.frame)
        ok, bgr = capture.read()
        if not ok:
            raise SystemExit(f"{args.frame}: cannot read a frame")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    from edgeseg.demo.sources import SyntheticSource, parse_frame_size

    return SyntheticSource(frames=1, hw=parse_frame_size(args.frame_size) or CAMERA_HW).frame(0)


def timed(run, x, seconds: float) -> list[float]:
    out, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        run(x)
        out.append(time.perf_counter() - t0)
    return out


def alternate(a, b, x, rounds: int, seconds: float) -> tuple[list[float], list[float]]:
    """Blocks of ``seconds`` in alternation, the order swapped every round. Blocks, not single
    frames: a runtime whose idle workers spin after a run would otherwise slow the one run next."""
    ta, tb = [], []
    for i in range(rounds):
        for run, into in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            into += timed(run, x, seconds)
    return ta, tb


def bare_onnxruntime(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def bare_litert(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(index, x)
        interpreter.invoke()
    return run


def benchmark_app(path: Path, x: np.ndarray, threads: int, precision_hint: str, seconds: float) -> float:
    """Median latency (ms) that OpenVINO's benchmark_app reports for ``x``'s shape."""
    tool = shutil.which("benchmark_app") or str(Path(__import__("sys").executable).parent / "benchmark_app")
    shape = "[" + ",".join(map(str, x.shape)) + "]"
    # -nthreads needs -hint none (a benchmark_app rule); one stream and one request is the latency setup
    cmd = [tool, "-m", str(path), "-d", "CPU", "-shape", shape, "-api", "sync", "-nireq", "1", "-hint", "none",
           "-nstreams", "1", "-nthreads", str(threads), "-infer_precision", precision_hint, "-t", str(int(seconds))]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Median:\s*([\d.]+)\s*ms", text)
    if not match:
        raise SystemExit(f"benchmark_app printed no median latency:\n{text[-2000:]}")
    return float(match.group(1))


def compare(bundle: Path, image: np.ndarray, threads: int, rounds: int, seconds: float) -> dict:
    predictor = Predictor(bundle, threads=threads)
    x, _ = predictor.prepare(image)
    backend = predictor.bundle.backend
    artifact = predictor.bundle.artifact("model")
    ours = predictor.raw
    for _ in range(5):  # edgeseg's session settles on the frame's shape (static copy) here
        ours(x)
    if backend == "openvino":
        hint = "f32" if predictor.bundle.meta["precision"] in ("fp32", "int8") else "f16"
        mine, theirs = [], []
        for _ in range(rounds):
            mine += timed(ours, x, seconds)
            theirs.append(benchmark_app(artifact, x, threads, hint, seconds))
        vendor, vendor_ms = "benchmark_app", statistics.median(theirs)
    else:
        bare = bare_onnxruntime(artifact, threads) if backend == "onnxruntime" else bare_litert(artifact, threads)
        for _ in range(5):
            bare(x)
        mine, theirs = alternate(ours, bare, x, rounds, seconds)
        vendor = "bare ONNX Runtime session" if backend == "onnxruntime" else "bare LiteRT interpreter"
        vendor_ms = statistics.median(theirs) * 1000
    ours_ms = statistics.median(mine) * 1000
    return {"bundle": str(bundle), "backend": backend, "precision": predictor.bundle.meta["precision"],
            "input": list(x.shape), "edgeseg_ms": round(ours_ms, 2), "vendor": vendor, "vendor_ms": round(vendor_ms, 2),
            "ratio": round(ours_ms / vendor_ms, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--frame", help="A video or image file: its first frame is the input.")
    ap.add_argument("--frame-size", help="Synthetic frame WxH (default 1280x720) when no --frame.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    image = frame(args)
    rows = [compare(b, image, args.threads, args.rounds, args.seconds) for b in args.bundles]
    for r in rows:
        print(f"{r['bundle']}: {r['backend']} {r['precision']} input {r['input']}: edgeseg {r['edgeseg_ms']:.2f} ms, "
              f"{r['vendor']} {r['vendor_ms']:.2f} ms, ratio {r['ratio']:.3f}")
    system = system_info(args.threads)
    print(json.dumps({"cpu": system["cpu"], "flags": system.get("cpu_flags"), "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
