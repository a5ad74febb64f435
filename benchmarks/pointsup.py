"""Point supervision vs full masks (PointSup, Cheng et al. CVPR 2022), same budget per run:

- SparseInst on the shapes and the nuclei data: full masks, P points per object for P in
  {1, 3, 5, 10, 20}, 10 points with point augmentation (5 of them drawn per sample, as
  detectron2's point_aug config), and on shapes 10 points with objectness not trained on the
  point IoU estimate;
- AdaMixer with its RoI mask head, and SOLOv2, on the shapes data: full masks vs 10 points;
- SparseInst with 10 points and the box's BoxInst-style terms (projection dice, colour pairwise),
  the colour term alone ramped in, and with neighbour negatives (another object's positive points
  inside a box are negatives of its object).

    python benchmarks/pointsup.py --out runs/pointsup            # train what is missing, then report
    python benchmarks/pointsup.py --out runs/pointsup --report   # table and plot of finished runs

Runs go in order of what they show: full masks and 10 points for every model first, then the
other P. A run's budget is its dataset's (--minutes overrides all). Point files are made from each training split by `edgeseg data points` (seed 0); validation
always uses the full masks, so every AP is against the masks. Each run is an `edgeseg train`
with a training budget of --minutes (or --steps), one after another (two torch processes on 2 cores thrash).
Writes results.json, table.md (mask AP and its ratio to the full-mask run) and ap_vs_points.png.
Finished runs are reused when their log says they finished.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import new_plot, write_table

EDGESEG = str(Path(sys.executable).parent / "edgeseg")
POINTS = (1, 3, 5, 10, 20)
# name -> (recipe, minutes of training per run, extra --set for every run)
DATASETS = {
    "shapes": ("sparseinst_shapes", 6.0, []),
    "adamixer": ("adamixer_shapes", 6.0, ["model.adamixer.mask_head.enabled=true", "train.eval_period=0"]),
    "nuclei": ("nuclei", 6.0, ["train.eval_period=0"]),
    "solov2": ("solov2_shapes", 6.0, []),
}
BOX_TERMS = ["model.sparseinst.loss.point_box_projection=1.0", "model.sparseinst.loss.point_pairwise=1.0"]
# BoxInst's colour term alone, its weight ramped from 0 over the first 1500 steps (BoxInst ramps it)
PAIRWISE_RAMPED = ["model.sparseinst.loss.point_pairwise=1.0", "solver.ramp_losses=[loss_pairwise]",
                   "solver.ramp_iters=1500"]
FIRST = ("full masks", "10 points")


def variants(dataset: str) -> dict[str, tuple[int, list[str]]]:
    """name -> (points per object, 0 for the masks; extra --set)."""
    out = {"full masks": (0, [])}
    if dataset in ("adamixer", "solov2"):
        return {**out, "10 points": (10, [])}
    out.update({f"{p} points": (p, []) for p in POINTS})
    out["10 points, point aug (5 of 10)"] = (10, ["data.sample_points=5"])
    if dataset == "shapes":
        out["10 points, objectness off"] = (10, ["model.sparseinst.loss.point_objectness=none"])
    # beyond PointSup: the box bounds the full-image mask and colour joins it (BoxInst's terms)
    out["10 points, box terms"] = (10, BOX_TERMS)
    if dataset == "shapes":
        out["10 points, colour pairwise ramped"] = (10, PAIRWISE_RAMPED)
        out["10 points, neighbour negatives"] = (10, ["data.point_neighbour_negatives=true"])
    return out


def train_split(recipe: str) -> tuple[str, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edgeseg.config import load_recipe
    from edgeseg.data.generate import ensure_dataset

    cfg = load_recipe(recipe)
    ensure_dataset(cfg.data)
    return cfg.data.train, cfg.data.val


def point_file(train: str, points: int, out: Path) -> Path:
    path = out / "points" / f"{Path(train).parent.name}_p{points}.json"
    if not path.is_file():
        subprocess.run([EDGESEG, "data", "points", train, "--points", str(points), "--seed", "0",
                        "--out", str(path)], check=True)
    return path


def finished(out: Path) -> dict | None:
    log = out / "log.jsonl"
    if not (log.is_file() and '"done": true' in log.read_text()):
        return None
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    final = [e for e in lines if "eval" in e][-1]
    done = next(e for e in lines if e.get("done"))
    return {"mask AP": final["eval"]["AP"] * 100, "AP50": final["eval"]["AP50"] * 100,
            "box AP": final.get("also", {}).get("box AP", float("nan")), "steps": done["step"],
            "minutes": done["train_minutes"]}


def train(out: Path, recipe: str, sets: list[str], minutes: float, steps: int, seed: int) -> None:
    # A step budget (--steps) is the same work on any CPU and under any load; a time budget is not.
    budget = [f"solver.max_iter={steps}", "solver.max_minutes=0"] if steps else [f"solver.max_minutes={minutes}"]
    cmd = [EDGESEG, "train", recipe, "--no-progress", "--set", f"train.output_dir={out}",
           "--set", f"train.seed={seed}"]
    for s in budget:
        cmd += ["--set", s]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True)


def slug(variant: str) -> str:
    return variant.split(",")[0].replace(" ", "") + ("_aug" if "aug" in variant else "") + \
        ("_objoff" if "objectness" in variant else "") + ("_box" if "box terms" in variant else "") + \
        ("_pairwise" if "pairwise" in variant else "") + ("_neighbours" if "neighbour" in variant else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=0, help="training budget per run (0: each dataset's own)")
    ap.add_argument("--steps", type=int, default=0,
                    help="training budget per run in steps (the schedule's length; overrides --minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/pointsup"))
    ap.add_argument("--report", action="store_true", help="only tabulate the runs that finished")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS), help="what to train")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="only these variants (names as in the table, e.g. 'full masks' '10 points')")
    args = ap.parse_args()

    plan = [(name, variant) for name in args.datasets for variant in variants(name)
            if args.variants is None or variant in args.variants]
    plan.sort(key=lambda item: item[1] not in FIRST)  # stable: datasets keep their order within each part
    if not args.report:
        for name, variant in plan:
            recipe, minutes, base_sets = DATASETS[name]
            out = args.out / name / slug(variant)
            if finished(out):
                continue
            points, sets = variants(name)[variant]
            data = [] if points == 0 else [f"data.train={point_file(train_split(recipe)[0], points, args.out)}"]
            train(out, recipe, base_sets + data + sets, args.minutes or minutes, args.steps, args.seed)
            print(name, variant, finished(out), flush=True)
    results: dict[str, dict[str, dict]] = {}
    for name, variant in ((n, v) for n in args.datasets for v in variants(n)):
        r = finished(args.out / name / slug(variant))
        if r:
            results.setdefault(name, {})[variant] = {"points": variants(name)[variant][0], **r}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))

    lines = ["| data (model) | supervision | mask AP | AP50 | % of full-mask AP | steps |", "|---|---|---|---|---|---|"]
    for name, by_variant in results.items():
        full = by_variant.get("full masks", {}).get("mask AP", float("nan"))
        label = {"adamixer": "shapes (AdaMixer + mask head)", "solov2": "shapes (SOLOv2)"}.get(name, f"{name} (SparseInst)")
        for variant, r in by_variant.items():
            ratio = f"{100 * r['mask AP'] / full:.0f}%" if full > 0 else "n/a"
            lines.append(f"| {label} | {variant} | {r['mask AP']:.1f} | {r['AP50']:.1f} | {ratio} | "
                         f"{r['steps']} in {r['minutes']:.1f} min |")
    write_table(args.out, lines)

    fig, ax = new_plot()
    for (name, by_variant), color in zip(results.items(), ("C0", "C1", "C2", "C3")):
        curve = [(r["points"], r["mask AP"]) for v, r in by_variant.items() if v.endswith(" points")]
        if curve:
            ax.plot(*zip(*curve), "o-", color=color, label=f"{name}: P points")
        if "full masks" in by_variant:
            ax.axhline(by_variant["full masks"]["mask AP"], color=color, linestyle="--", label=f"{name}: full masks")
        for v, r in by_variant.items():
            if "aug" in v:
                ax.plot([10], [r["mask AP"]], "s", color=color, label=f"{name}: 10 points, point aug")
    ax.set_xscale("log")
    ax.set_xticks(POINTS, [str(p) for p in POINTS])
    ax.set_xlabel("labelled points per object (P)")
    ax.set_ylabel("mask AP (val, full masks)")
    ax.set_title("Point supervision vs full masks, same budget per dataset")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "ap_vs_points.png", dpi=120)


if __name__ == "__main__":
    main()
