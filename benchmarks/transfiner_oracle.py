"""What Mask Transfiner's quadtree can gain at a node budget, with no network: ground-truth boxes,
the coarse 28x28 mask = RoIAlign of the ground-truth mask (a perfect coarse head), and every node
set to a perfect value. Mask IoU and boundary IoU of the pasted masks against the ground truth,
for the coarse mask pasted directly and for the quadtree at several budgets, with node values as
the training targets would teach them (`area`: the share of the node's cell the mask covers;
`point`: the mask at the cell's centre) and levels assembled as probabilities (edgeseg) or as
logits (the earlier edgeseg). A second table ranks the nodes two ways at equal budgets (area
values, probabilities): by the incoherence target the head learns (binary) and by the 28x28
mask's resolution error (per 28-cell, the mean |up(28x28) - 112x112| of the ground truth's
RoIAligns: where a perfect coarse head is still wrong), with and without the 112 level:

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
from edgeseg.models.transfiner.quadtree import LEVELS, assemble, cell_centres, in_image, level_nodes, to_logits, upsample
from edgeseg.postprocess.roi_masks import paste

BUDGETS = {"[1, 1, 1]": [1, 1, 1], "[48, 16, 8] (recipe)": [48, 16, 8], "[48, 32, 16]": [48, 32, 16],
           "[96, 48, 32]": [96, 48, 32], "[96, 96, 96]": [96, 96, 96], "every cell": [784, 784, 784]}
SATURATED = 6.0  # the logit of a perfect binary node value
# node rankings compared at these budgets (the recipe's, the same 240 nodes without the 112 level, twice that)
RANKED_BUDGETS = {"[48, 16, 8] (recipe, 240 nodes)": [48, 16, 8], "[80, 40, 0] (240 nodes)": [80, 40, 0],
                  "[96, 96, 0] (480 nodes)": [96, 96, 0]}


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


def resolution_error(mask: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """[1, 28, 28]: per 28-cell, the mean |up(RoIAlign 28) - RoIAlign 112| of a mask over its 4x4
    children: what a perfect 28x28 head still gets wrong there."""
    coarse = roi_align(mask[None, None], box[:, None], 28, 1.0)[:, 0]
    fine = roi_align(mask[None, None], box[:, None], 112, 1.0)[:, 0]
    return F.avg_pool2d((upsample(coarse, 112) - fine).abs()[:, None], 4)[:, 0]


def scored(pasted: np.ndarray, gt: np.ndarray, into: tuple[list, list]) -> None:
    into[0].append((pasted & gt).sum() / max((pasted | gt).sum(), 1))
    into[1].append(boundary_iou(pasted, gt))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/thin_shapes/val"))
    ap.add_argument("--instances", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("runs/transfiner_oracle"))
    args = ap.parse_args()
    rows = {"coarse 28x28 pasted directly": None, **{f"{name}, {mode} values, {space}": (cells, mode, space)
            for name, cells in BUDGETS.items() for mode in ("area", "point") for space in ("probabilities", "logits")}}
    scores = {name: ([], []) for name in rows}
    ranked = {(budget, rank): ([], []) for budget in RANKED_BUDGETS for rank in ("incoherence", "resolution error")}
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
            scored(paste(probs[0].numpy(), box[0].numpy(), gt.shape, 0.5), gt, scores[name])
        by_rank = {"incoherence": incoherence, "resolution error": (resolution_error(mask, box) + torch.rand(1, 28, 28) * 1e-6).flatten(1)}
        for budget, rank in ranked:
            nodes, _ = level_nodes(by_rank[rank], RANKED_BUDGETS[budget])
            probs = assemble(coarse, nodes, node_values(mask, box, nodes, "area"))
            scored(paste(probs[0].numpy(), box[0].numpy(), gt.shape, 0.5), gt, ranked[(budget, rank)])
    lines = ["| masks | mask IoU | boundary IoU |", "|---|---|---|"]
    lines += [f"| {name} | {np.mean(iou):.3f} | {np.mean(biou):.3f} |" for name, (iou, biou) in scores.items()]
    lines += ["", "| nodes (area values, probabilities) | ranked by | mask IoU | boundary IoU |", "|---|---|---|---|"]
    lines += [f"| {budget} | {rank} | {np.mean(iou):.3f} | {np.mean(biou):.3f} |" for (budget, rank), (iou, biou) in ranked.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
