"""Where a SparseInst mask trained from points goes wrong: on training images, each object's
matched query (matched as the point loss matches) is measured against the object's point labels
and box, and against its full mask, which training never saw:

- points: positive labels (t), their predicted share (sum p*t), and sum p^2 over the points;
- spill: sum p^2 over the mask cells outside the object's box (what the box says is background);
- dice over those labels (the point loss's) and the full-mask IoU of the binarised mask.

    python benchmarks/pointsup_spill.py runs/pointsup/shapes/10points/best.pt runs/pointsup/shapes/fullmasks/best.pt \\
        --points runs/pointsup/points/shapes_p10.json --masks data/shapes/train --images 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import write_table
from edgeseg.data.coco import CocoDataset
from edgeseg.engine.checkpoint import load_model
from edgeseg.models.point_sup import labelled_dice, labelled_sums
from edgeseg.models.sparseinst.point_loss import MASK_STRIDE, match_points
from edgeseg.preprocess import normalize

COLUMNS = ("positive points", "sum p*t", "sum p^2 at points", "spill", "point dice", "mask IoU")


@torch.no_grad()
def measure(checkpoint: Path, points: CocoDataset, masks: CocoDataset, images: int, threshold: float) -> np.ndarray:
    """One row of COLUMNS per object of the first ``images`` training images."""
    model, recipe, _ = load_model(checkpoint)
    model.eval()
    cfg, rows = recipe.model.method.loss, []
    for i in range(min(images, len(points))):
        if Path(points.records[i]["file_name"]).name != Path(masks.records[i]["file_name"]).name:
            raise SystemExit(f"{masks.source}: image {i} is not the point file's; give the split the points came from")
        image, found, full = points.load_image(i), points.load_instances(i), masks.load_instances(i)
        if len(found["labels"]) == 0:
            continue
        h0, w0 = image.shape[:2]
        x = torch.from_numpy(normalize(image)).permute(2, 0, 1)[None]
        x = F.pad(x, (0, -w0 % 32, 0, -h0 % 32))
        out = model(x)
        logits = out["pred_masks"][0]
        target = {k: torch.from_numpy(v) for k, v in found.items()}
        queries, objects, sampled, away = match_points(logits, out["pred_logits"][0].sigmoid(), target, cfg)
        pt, pp, tt = labelled_sums(sampled[queries, objects].sigmoid(), target["point_labels"][objects])
        spill = (logits.flatten(1)[queries].sigmoid().square() * away[objects]).sum(-1)
        dice = labelled_dice(pt, pp, tt, spill)
        up = F.interpolate(logits[None], scale_factor=MASK_STRIDE, mode="bilinear", align_corners=False)[0, :, :h0, :w0]
        binary = up.sigmoid() > threshold
        for k, (q, j) in enumerate(zip(queries.tolist(), objects.tolist())):
            truth = torch.from_numpy(full["masks"][j]).bool()
            iou = (binary[q] & truth).sum() / (binary[q] | truth).sum().clamp(min=1)
            rows.append([tt[k], pt[k], pp[k], spill[k], dice[k], iou])
    return np.asarray(rows, np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--points", type=Path, required=True, help="the point annotations the runs trained on")
    ap.add_argument("--masks", type=Path, required=True, help="the same images with their masks")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--threshold", type=float, default=0.45, help="mask binarisation (the postprocess's)")
    ap.add_argument("--out", type=Path, default=Path("runs/pointsup_spill"))
    args = ap.parse_args()

    points, masks = CocoDataset(args.points), CocoDataset(args.masks)
    lines = ["| checkpoint | objects | " + " | ".join(f"{c} (mean / median)" for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for checkpoint in args.checkpoints:
        rows = measure(checkpoint, points, masks, args.images, args.threshold)
        cells = " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(rows.mean(0), np.median(rows, 0)))
        lines.append(f"| {checkpoint} | {len(rows)} | {cells} |")
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
