"""What Mask Transfiner's quadtree can gain at a node budget, with no network: ground-truth boxes,
the coarse 28x28 mask = RoIAlign of the ground-truth mask (a perfect coarse head), and every node
set to a perfect value. Mask IoU and boundary IoU of the pasted masks against the ground truth,
for the coarse mask pasted directly and for the quadtree at several budgets, with node values as
the training targets would teach them (`area`: the share of the node's cell the mask covers;
`point`: the mask at the cell's centre) and levels assembled as probabilities (edgeseg) or as
logits (the earlier edgeseg):

    python benchmarks/transfiner_oracle.py --data data/thin_shapes/val --instances 400
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import write_table
from edgeseg.data.coco import CocoDataset
from edgeseg.evaluation.boundary import boundary_iou
from edgeseg.models.roi_align import roi_align
from edgeseg.models.transfiner.incoherence import incoherence_targets
from edgeseg.models.transfiner.quadtree import LEVELS, assemble, cell_centres, in_image, level_nodes, to_logits
from edgeseg.postprocess.roi_masks import paste

BUDGETS = {"[1, 1, 1]": [1, 1, 1], "[48, 16, 8] (recipe)": [48, 16, 8], "[48, 32, 16]": [48, 32, 16],
           "[96, 48, 32]": [96, 48, 32], "[96, 96, 96]": [96, 96, 96], "every cell": [784, 784, 784]}
SATURATED = 6.0  # the logit of a perfect binary node value


def assemble_logits(coarse, nodes, values):
    """The quadtree assembled as logits: each level overwritten, then upsampled as logits."""
    k = coarse.shape[0]
    out = coarse.reshape(k, -1)
    for level, (index, value) in enumerate(zip(nodes, values)):
        if level:
            size = LEVELS[level]
            out = F.interpolate(out.reshape(k, 1, size // 2, size // 2), size=(size, size), mode="bilinear",
                                align_corners=False).reshape(k, -1)
        out = out.scatter(1, index, value)
    return out.reshape(k, LEVELS[-1], LEVELS[-1]).sigmoid()


def instances(data: Path, limit: int):
    """(bool mask [H, W], xyxy box [1, 4]) of the first ``limit`` instances of a mask dataset."""
    dataset, count = CocoDataset(data), 0
    for i in range(len(dataset)):
        found = dataset.load_instances(i)
        for mask, box in zip(found["masks"], found["boxes"]):
            if count == limit:
                return
            count += 1
            yield mask.astype(bool), torch.from_numpy(box)[None]


def node_values(mask: torch.Tensor, box: torch.Tensor, nodes, mode: str) -> list[torch.Tensor]:
    h, w = mask.shape[-2:]
    values = []
    for index, grid in zip(nodes, LEVELS):
        if mode == "area":
            share = roi_align(mask[None, None], box[:, None], grid, 1.0)[:, 0].flatten(1).gather(1, index)
            values.append(to_logits(share, 1e-4))
        else:
            xy = in_image(cell_centres(index, grid), box)
            inside = mask[xy[..., 1].long().clamp(0, h - 1), xy[..., 0].long().clamp(0, w - 1)]
            values.append((inside.float() - 0.5) * 2 * SATURATED)
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/thin_shapes/val"))
    ap.add_argument("--instances", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("runs/transfiner_oracle"))
    args = ap.parse_args()
    rows = {"coarse 28x28 pasted directly": None, **{f"{name}, {mode} values, {space}": (cells, mode, space)
            for name, cells in BUDGETS.items() for mode in ("area", "point") for space in ("probabilities", "logits")}}
    scores = {name: ([], []) for name in rows}
    torch.manual_seed(0)
    for gt, box in instances(args.data, args.instances):
        mask = torch.from_numpy(gt).float()
        # logits within +-9.2: the logit-space rows depend on this saturation (+-13.8 erodes more)
        coarse = to_logits(roi_align(mask[None, None], box[:, None], 28, 1.0)[:, 0], 1e-4)
        # ties among incoherent cells broken at random, not by position
        incoherence = (incoherence_targets(mask[None], box) + torch.rand(1, 28, 28) * 1e-3).flatten(1)
        for name, spec in rows.items():
            if spec is None:
                probs = coarse.sigmoid()
            else:
                cells, mode, space = spec
                nodes, _ = level_nodes(incoherence, cells)
                values = node_values(mask, box, nodes, mode)
                probs = assemble(coarse, nodes, values) if space == "probabilities" else assemble_logits(coarse, nodes, values)
            pasted = paste(probs[0].numpy(), box[0].numpy(), gt.shape, 0.5)
            scores[name][0].append((pasted & gt).sum() / max((pasted | gt).sum(), 1))
            scores[name][1].append(boundary_iou(pasted, gt))
    lines = ["| masks | mask IoU | boundary IoU |", "|---|---|---|"]
    lines += [f"| {name} | {np.mean(iou):.3f} | {np.mean(biou):.3f} |" for name, (iou, biou) in scores.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
