"""FP32 bundles against PyTorch on every val image, per output of the model's kind: max |score|
difference, max |box| difference in input pixels, max |mask probability| difference; over every
raw query, and over the queries PyTorch scores at the bundle's deploy threshold or above (what the
device shows: low-scored queries carry the float noise of every decoder stage, and a query that ties
for a place among the top R refined is refined by one runtime and not by the other); and the share
of mask probabilities within 1e-4 (Mask Transfiner chooses its nodes by TopK over predicted scores:
where two cells' scores tie within the runtimes' float noise, each runtime may refine a different
one, and those few cells differ by as much as refinement changes them).

    python benchmarks/parity.py runs/quickstart/train/best.pt runs/export/onnx_fp32 ... --data data/shapes/val

``--float64`` also measures both against the same model run in float64 (the exact result, as far as
float32 inputs allow): where PyTorch FP32 itself is as far from it as the bundle is from PyTorch,
no float32 runtime can do better, and the bound asked for is below float32's own noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edgeseg.data.coco import CocoDataset
from edgeseg.engine.checkpoint import load_model
from edgeseg.postprocess import sigmoid
from edgeseg.runtime import Predictor, read_bundle

# How each output is compared: masks are logits, compared as probabilities.
MEASURES = {"scores": ("score", lambda a: a), "boxes": ("box px", lambda a: a), "masks": ("mask prob", sigmoid)}


def difference(name: str, a, b) -> np.ndarray:
    """|a - b| of one output, as MEASURES compares it (float64: a float32 copy would round the floor)."""
    f = MEASURES.get(name, (name, lambda v: v))[1]
    return np.abs(f(np.asarray(a, np.float64)) - f(np.asarray(b, np.float64)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--float64", action="store_true", help="also compare PyTorch FP32 and each bundle with float64")
    args = ap.parse_args()
    model, _, _ = load_model(args.checkpoint)
    exact = load_model(args.checkpoint)[0].double() if args.float64 else None
    val = CocoDataset(args.data)
    for path in args.bundles:
        # a Jetson bundle before its engine is built: the ONNX the engine is built from, on ONNX Runtime
        predictor = Predictor(path, backend="onnxruntime" if read_bundle(path).backend == "tensorrt" else None)
        worst: dict[str, tuple[float, str]] = {}
        shown: dict[str, tuple[float, str]] = {}
        floor: dict[str, dict[str, float]] = {"PyTorch FP32 vs float64": {}, f"{path} vs float64": {}}
        close, total = 0, 0
        for i in range(len(val)):
            x, _ = predictor.prepare(val.load_image(i))
            got = predictor.raw(x)
            nchw = x.transpose(0, 3, 1, 2) if predictor.layout == "NHWC" else x
            with torch.no_grad():
                ref = model.deploy_outputs(model(torch.from_numpy(np.ascontiguousarray(nchw))))
            kept = ref["scores"][0].numpy().max(-1) >= predictor.score if "scores" in ref else None
            if exact is not None:
                with torch.no_grad():
                    ref64 = exact.deploy_outputs(exact(torch.from_numpy(np.ascontiguousarray(nchw)).double()))
                for table, outputs in zip(floor.values(), ({k: v[0].numpy() for k, v in ref.items()}, got)):
                    for name, value in outputs.items():
                        diff = float(difference(name, value, ref64[name][0].numpy()).max())
                        table[name] = max(table.get(name, 0.0), diff)
            for name, value in got.items():
                diff = difference(name, value, ref[name][0].numpy())
                if name == "masks":
                    close, total = close + int((diff <= 1e-4).sum()), total + diff.size
                image = val.records[i]["file_name"]
                if diff.max() >= worst.get(name, (-1.0, ""))[0]:
                    worst[name] = (float(diff.max()), image)
                if kept is not None and kept.any() and diff.shape[0] == kept.shape[0]:  # per-query outputs
                    if diff[kept].max() >= shown.get(name, (-1.0, ""))[0]:
                        shown[name] = (float(diff[kept].max()), image)
        for label, table in (("every query", worst), (f"queries scored >= {predictor.score:g}", shown)):
            parts = [f"max |{MEASURES.get(n, (n,))[0]} diff| {d:.2e} ({image})" for n, (d, image) in table.items()]
            print(f"{path}: {len(val)} images, {label}: " + ", ".join(parts))
        if total:
            print(f"{path}: {close / total:.5%} of {total} mask probabilities within 1e-4")
        for label, table in floor.items() if exact is not None else ():
            print(f"{label}, every query: " + ", ".join(f"max |{MEASURES.get(n, (n,))[0]} diff| {d:.2e}" for n, d in table.items()))


if __name__ == "__main__":
    main()
