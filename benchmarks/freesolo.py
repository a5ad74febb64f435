"""Annotation-free instance segmentation (FreeSOLO, CVPR 2022) on the textured shapes and on the
nuclei image, every mask scored class-agnostically (COCO useCats=0) against the val split's masks,
which nothing else reads:

  (a) trivial baselines: one full-image mask; fixed centred masks at 3 scales;
  (b) Free Mask with random-init features;
  (c) Free Mask with ImageNet MobileNetV2 features, and with features pre-trained on the train
      split's images by ``edgeseg pretrain`` (DenseCL-style, from random weights: no labels at all);
  (d) SOLOv2 trained on the free masks of the train split (projection + pairwise losses);
  (e) one self-training round: (d)'s confident masks on the train split, SOLOv2 trained again.

    python benchmarks/freesolo.py --out runs/freesolo                 # what is missing, then the table
    python benchmarks/freesolo.py --out runs/freesolo --steps 1500    # training budget per round

Free Mask's options are the dataset's (``DATASETS``: the nuclei keep each query's own region).
Goals (issue 12): (d) beats its targets (c), (e) beats (d), all beat (a) and (b). (d) and (e) are
``edgeseg freesolo`` on the train split's images (free masks, a round, a self-training round:
each round an ``edgeseg train`` on a pseudo-label file), one process at a time (two torch
processes on 2 cores thrash). Finished steps are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write_table  # noqa: E402

from edgeseg.pseudo.labels import PseudoLabels  # noqa: E402
from edgeseg.pseudo.score import pseudo_label_ap  # noqa: E402

EDGESEG = str(Path(sys.executable).parent / "edgeseg")
# name -> (data root, how to build it, recipe, extra --set, edgeseg freemask options)
DATASETS = {
    "textured": ("data/textured_shapes", ["data", "shapes", "--style", "textured"], "freesolo_textured", [], []),
    # dozens of look-alike nuclei: a query's similar pixels are all of them, so each keeps its own
    # connected region; they are small, so the features are read at 768 px and 100 masks kept
    # (the val image's class-agnostic AP50 of Free Mask: 0.0 with the defaults, 39.9 with these)
    "nuclei": ("data/nuclei", ["data", "nuclei"], "freesolo_textured",
               ["data.generate=", "data.crop=true", "data.crop_size=[128,256]", "data.min_size_train=[224,256,288]",
                "data.min_size_test=384", "data.max_size_test=640",
                # ~100 nuclei per tile: a thousand positive cells per image without a cap
                "model.solov2.loss.max_mask_cells=256"],
               ["--own-region", "--size", "768", "--top", "100"]),
}
CENTRED = (0.25, 0.5, 0.75)  # side of the fixed centred squares, as a fraction of the image's


def run(*args: str) -> None:
    subprocess.run([EDGESEG, *args], check=True)


def baseline(val: Path, out: Path, kind: str) -> Path:
    """(a): one full-image mask per image, or centred squares at 3 scales (scored by size)."""
    if out.is_file():
        return out
    labels = PseudoLabels(val, out, "baseline masks")
    for rec, image in labels:
        h, w = image.shape[:2]
        if kind == "full image":
            masks, scores = np.ones((1, h, w), bool), [1.0]
        else:
            masks = np.zeros((len(CENTRED), h, w), bool)
            for m, f in zip(masks, CENTRED):
                m[int(h * (1 - f) / 2): int(h * (1 + f) / 2), int(w * (1 - f) / 2): int(w * (1 + f) / 2)] = True
            scores = [1.0 - 0.1 * k for k in range(len(CENTRED))]
        labels.add(rec, (h, w), masks, scores)
    labels.write(f"baseline: {kind}", {"method": kind})
    return out


def free_masks(images: Path, out: Path, weights: str, options: list[str]) -> Path:
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        run("freemask", str(images), "--out", str(out), "--weights", weights, *options)
    return out


def predicted(model: Path, images: Path, out: Path, score: float) -> Path:
    if not out.is_file():
        run("pseudolabel", str(model), str(images), "--out", str(out), "--score", str(score))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/freesolo"))
    ap.add_argument("--steps", type=int, default=1500, help="training steps per round (the same work on any CPU)")
    ap.add_argument("--pretrain-steps", type=int, default=1000,
                    help="edgeseg pretrain steps for the self-supervised features (0: skip that row)")
    ap.add_argument("--keep", default="auto", help="self-training: keep masks scored at least this, or 'auto' "
                    "(as many per image as the first round trained on, the most confident)")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = ap.parse_args()

    rows = ["| data | masks | class-agnostic mask AP | AP50 | AR100 |", "|---|---|---|---|---|"]
    results = {}
    for name in args.datasets:
        root, build, recipe, sets, freemask = DATASETS[name]
        root = Path(root)
        if not (root / "train").is_dir():
            run(*build, "--out", str(root))
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        train, val = root / "train", root / "val"
        steps = {
            "(a) one full-image mask": baseline(val, out / "a_full.json", "full image"),
            "(a) centred squares, 3 scales": baseline(val, out / "a_centred.json", "centred squares"),
            "(b) Free Mask, random-init features": free_masks(val, out / "b_random_val.json", "random", freemask),
            "(c) Free Mask, ImageNet features": free_masks(val, out / "c_imagenet_val.json", "imagenet", freemask),
        }
        ssl = out / "ssl_backbone.pt"
        if args.pretrain_steps and not ssl.is_file():
            run("pretrain", str(train), "--out", str(ssl), "--steps", str(args.pretrain_steps))
        if ssl.is_file():
            steps["(c) Free Mask, self-supervised features"] = free_masks(val, out / "c_ssl_val.json", str(ssl), freemask)
        budget = [f"solver.max_iter={args.steps}", "solver.max_minutes=0", *sets]
        free_masks(train, out / "pipeline" / "free_masks.json", "imagenet", freemask)  # the pipeline reuses it
        run("freesolo", str(train), "--out", str(out / "pipeline"), "--recipe", recipe, "--rounds", "1",
            "--keep", str(args.keep), *[a for s in budget for a in ("--set", s)])
        first, second = out / "pipeline" / "round0" / "last.pt", out / "pipeline" / "round1" / "last.pt"
        steps["(d) SOLOv2 on the free masks"] = predicted(first, val, out / "d_val.json", 0.0)
        steps["(e) after one self-training round"] = predicted(second, val, out / "e_val.json", 0.0)
        results[name] = {}
        for label, path in steps.items():
            m = pseudo_label_ap(path, val)["metrics"]
            results[name][label] = {k: 100 * m[k] for k in ("AP", "AP50", "AR100")}
            rows.append(f"| {name} | {label} | {100 * m['AP']:.1f} | {100 * m['AP50']:.1f} | {100 * m['AR100']:.1f} |")
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    write_table(args.out, rows)


if __name__ == "__main__":
    main()
