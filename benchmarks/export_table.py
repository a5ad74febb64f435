"""FP32 vs INT8 per runtime: mask AP on a val set and model-only latency, measured interleaved.

    python benchmarks/export_table.py runs/quickstart/train/best.pt --data data/shapes/val

Exports (or reuses, with --reuse) FP32 and INT8 bundles per target under --out, measures them
with `edgeseg bench` (all bundles interleaved, so machine noise hits them alike) and prints, per
runtime, the AP drop and the INT8 speed-up over FP32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeseg.bench import run_bench
from edgeseg.export import TARGETS, export_bundle, format_module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", default="shapes", help="calibration set (calibration/README.md)")
    ap.add_argument("--imgsz", default="256")
    ap.add_argument("--out", type=Path, default=Path("runs/export_table"))
    ap.add_argument("--targets", default="onnx,openvino,tflite")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out")
    args = ap.parse_args()

    bundles = []
    for target in args.targets.split(","):
        if not format_module(TARGETS[target].format).is_available():
            print(f"skip {target}: export tools not installed")
            continue
        for precision in ("fp32", "int8"):
            out = args.out / f"{target}_{precision}"
            if not (args.reuse and (out / "bundle.json").is_file()):
                export_bundle(args.checkpoint, target, out, precision=precision, imgsz=args.imgsz, calib=args.calib,
                              log=lambda *_: None)
            bundles.append(out)
    result = run_bench(bundles, data=args.data, frames=args.frames, threads=args.threads)
    rows = {(r["format"], r["precision"]): r for r in result["results"]}
    print(f"\n{'runtime':10} {'precision':9} {'mask AP':>8} {'AP drop':>8} {'median ms':>10} {'p90 ms':>8} {'INT8 speed-up':>14}")
    for (fmt, precision), r in rows.items():
        fp32 = rows.get((fmt, "fp32"), r)
        infer = r["latency_ms"]["infer"]
        speedup = fp32["latency_ms"]["infer"]["median"] / infer["median"]
        print(f"{fmt:10} {precision:9} {r['ap']:8.2f} {fp32['ap'] - r['ap']:8.2f} "
              f"{infer['median']:10.2f} {infer['p90']:8.2f} {speedup:13.2f}x")
    print(f"({result['frames']} frames, threads {result['system']['threads']}, load {result['system']['load_average']})")


if __name__ == "__main__":
    main()
