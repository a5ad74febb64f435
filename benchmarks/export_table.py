"""FP32 vs INT8 per runtime: mask AP on a val set and model-only latency, measured interleaved.

    python benchmarks/export_table.py runs/quickstart/train/best.pt --data data/shapes/val

Exports (or reuses, with --reuse) onnx and openvino bundles in fp32 and int8 under --out, then
times every bundle round-robin on the same preprocessed inputs so that machine noise hits all of
them alike, and prints medians and the INT8/FP32 speed ratio per runtime.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from edgeseg.data.coco import CocoDataset
from edgeseg.evaluation.dataset_eval import evaluate_dataset
from edgeseg.export import TARGETS, export_bundle, format_module
from edgeseg.runtime import Predictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", default=None, help="calibration set (default: the recipe's training set)")
    ap.add_argument("--imgsz", default="256")
    ap.add_argument("--out", type=Path, default=Path("runs/export_table"))
    ap.add_argument("--targets", default="onnx,openvino")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out")
    args = ap.parse_args()

    val = CocoDataset(args.data)
    bundles = {}
    for target in args.targets.split(","):
        if not format_module(TARGETS[target].format).is_available():
            print(f"skip {target}: export tools not installed")
            continue
        for precision in ("fp32", "int8"):
            out = args.out / f"{target}_{precision}"
            if not (args.reuse and (out / "bundle.json").is_file()):
                export_bundle(args.checkpoint, target, out, precision=precision, imgsz=args.imgsz,
                              calib=args.calib if precision == "int8" else None, log=lambda *_: None)
            bundles[(target, precision)] = Predictor(out, threads=args.threads)

    aps = {key: evaluate_dataset(p, val)["metrics"]["AP"] * 100 for key, p in bundles.items()}
    inputs = [p.prepare(val.load_image(i))[0] for i, p in zip(range(8), [next(iter(bundles.values()))] * 8)]
    times: dict = {key: [] for key in bundles}
    for key, p in bundles.items():  # warm-up
        p.raw(inputs[0])
    for r in range(args.rounds):
        x = inputs[r % len(inputs)]
        for key, p in bundles.items():
            t0 = time.perf_counter()
            p.raw(x)
            times[key].append((time.perf_counter() - t0) * 1000)

    print(f"\n{'runtime':10} {'precision':9} {'mask AP':>8} {'median ms':>10} {'p90 ms':>8} {'speed-up':>9}")
    for (target, precision), p in bundles.items():
        med = statistics.median(times[(target, precision)])
        p90 = float(np.percentile(times[(target, precision)], 90))
        base = statistics.median(times[(target, "fp32")]) if (target, "fp32") in times else med
        print(f"{target:10} {precision:9} {aps[(target, precision)]:8.2f} {med:10.2f} {p90:8.2f} {base / med:8.2f}x")


if __name__ == "__main__":
    main()
