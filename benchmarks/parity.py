"""FP32 bundles against PyTorch on every val image: max |mask probability| and |score| differences.

    python benchmarks/parity.py runs/quickstart/train/best.pt runs/export/onnx_fp32 ... --data data/shapes/val
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edgeseg.data.coco import CocoDataset
from edgeseg.engine.checkpoint import load_model
from edgeseg.postprocess import sigmoid
from edgeseg.runtime import Predictor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    model, _, _ = load_model(args.checkpoint)
    val = CocoDataset(args.data)
    for path in args.bundles:
        predictor = Predictor(path)
        worst_prob = worst_score = 0.0
        worst_image = None
        for i in range(len(val)):
            x, _ = predictor.prepare(val.load_image(i))
            got = predictor.raw(x)
            scores, masks = got["scores"], got["masks"]
            nchw = x.transpose(0, 3, 1, 2) if predictor.layout == "NHWC" else x
            with torch.no_grad():
                ref = model.deploy_outputs(model(torch.from_numpy(np.ascontiguousarray(nchw))))
                ref_scores, ref_masks = ref["scores"], ref["masks"]
            prob = float(np.abs(sigmoid(masks) - sigmoid(ref_masks[0].numpy())).max())
            if prob > worst_prob:
                worst_prob, worst_image = prob, val.records[i]["file_name"]
            worst_score = max(worst_score, float(np.abs(scores - ref_scores[0].numpy()).max()))
        print(f"{path}: {len(val)} images, max |mask prob diff| {worst_prob:.2e} ({worst_image}), "
              f"max |score diff| {worst_score:.2e}")


if __name__ == "__main__":
    main()
