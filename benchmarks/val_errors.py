"""Where a model's mask AP goes, object by object: for each val object, the best IoU of any
detection (score >= --min-score), whether that detection has the object's class, and how many
detections at the deploy threshold overlap it at IoU > 0.5 (more than one is a duplicate).
``--by-kind`` splits the best IoU by how occluded an object is (the share of its box that other
objects' masks cover) and by how much of its box it fills (mask area / box area).

    edgeseg eval MODEL.pt --data data/shapes/val --out results.json
    python benchmarks/val_errors.py results.json [more.json ...] --data data/shapes/val

Used to compare a point-trained SparseInst with its mask-trained twin (issue 11).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO


def object_kinds(gt: COCO) -> tuple[np.ndarray, np.ndarray]:
    """Per val object, in object_errors' order: (occlusion: the share of its box covered by the
    other objects' masks of its image, fill: its mask's area over its box's)."""
    occlusion, fill = [], []
    for image_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=image_id, iscrowd=False))
        masks = [gt.annToMask(a).astype(bool) for a in anns]
        for j, ann in enumerate(anns):
            x, y, w, h = (int(round(v)) for v in ann["bbox"])
            box = np.zeros_like(masks[j])
            box[y:y + max(h, 1), x:x + max(w, 1)] = True
            others = np.zeros_like(box)
            for k, m in enumerate(masks):
                if k != j:
                    others |= m
            occlusion.append((others & box).sum() / max(box.sum(), 1))
            fill.append(masks[j].sum() / max(box.sum(), 1))
    return np.array(occlusion), np.array(fill)


KINDS = {"not occluded": lambda occ, fill: occ == 0, "occluded < 15% of the box": lambda occ, fill: (occ > 0) & (occ < 0.15),
         "occluded >= 15%": lambda occ, fill: occ >= 0.15, "fill < 0.5": lambda occ, fill: fill < 0.5,
         "fill 0.5-0.7": lambda occ, fill: (fill >= 0.5) & (fill < 0.7), "fill >= 0.7": lambda occ, fill: fill >= 0.7}


def object_errors(results: list[dict], gt: COCO, min_score: float, deploy: float) -> dict:
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if r["score"] >= min_score:
            by_image.setdefault(r["image_id"], []).append(r)
    best, right, found = [], [], []
    for image_id in gt.getImgIds():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=image_id, iscrowd=False))
        dets = by_image.get(image_id, [])
        if not anns:
            continue
        if not dets:
            best += [0.0] * len(anns)
            right += [False] * len(anns)
            found += [0] * len(anns)
            continue
        ious = mask_utils.iou([d["segmentation"] for d in dets], [gt.annToRLE(a) for a in anns], [0] * len(anns))
        confident = np.array([d["score"] >= deploy for d in dets])
        for j, ann in enumerate(anns):
            i = int(np.argmax(ious[:, j]))
            best.append(float(ious[i, j]))
            right.append(dets[i]["category_id"] == ann["category_id"])
            found.append(int(((ious[:, j] > 0.5) & confident).sum()))
    best, right, found = np.array(best), np.array(right), np.array(found)
    return {"objects": len(best), "IoU > 0.5": np.mean(best > 0.5), "IoU > 0.75": np.mean(best > 0.75),
            "class right (IoU > 0.5)": right[best > 0.5].mean() if (best > 0.5).any() else float("nan"),
            "no detection at the threshold": np.mean(found == 0), "one": np.mean(found == 1),
            "duplicates": np.mean(found > 1), "best IoU": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path, help="COCO results JSON (edgeseg eval --out)")
    ap.add_argument("--data", type=Path, required=True, help="the COCO val folder the results are of")
    ap.add_argument("--min-score", type=float, default=0.05, help="detections considered for the best IoU")
    ap.add_argument("--deploy", type=float, default=0.3, help="deploy threshold for counting detections")
    ap.add_argument("--by-kind", action="store_true", help="also the best IoU by occlusion and by fill")
    args = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(args.data / "annotations.json"))
    rows = [object_errors(json.loads(p.read_text()), gt, args.min_score, args.deploy) for p in args.results]
    keys = [k for k in rows[0] if k != "best IoU"]
    print("| results | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for path, row in zip(args.results, rows):
        cells = [f"{row[k]}" if k == "objects" else f"{100 * row[k]:.1f}%" for k in keys]
        print(f"| {path} | " + " | ".join(cells) + " |")
    if args.by_kind:
        occlusion, fill = object_kinds(gt)
        print("\n| results | objects | " + " | ".join(f"{k}: IoU > 0.5 / > 0.75" for k in KINDS) + " |")
        print("|---" * (len(KINDS) + 2) + "|")
        groups = {k: select(occlusion, fill) for k, select in KINDS.items()}
        for path, row in zip(args.results, rows):
            best = row["best IoU"]
            cells = [f"{100 * np.mean(best[g] > 0.5):.1f}% / {100 * np.mean(best[g] > 0.75):.1f}% ({g.sum()})"
                     for g in groups.values()]
            print(f"| {path} | {len(best)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
