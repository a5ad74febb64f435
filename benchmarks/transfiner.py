"""Mask Transfiner vs AdaMixer's coarse 28x28 mask head on the thin-structure shapes, same training
budget, N seeds; and the paper's ablations at small scale (nodes by incoherence vs random vs most
uncertain at equal budget; transformer vs per-node MLP):

    python benchmarks/transfiner.py --steps 1500 --seeds 0 1 --out runs/transfiner_bench

With --init-steps N, every variant of a seed starts from the same AdaMixer trained N steps on the
data (its detector and 28x28 mask head, loaded by name with `train.init`; Transfiner's refinement
starts fresh) and then trains the budget: equal steps for every variant, and a refinement that
learns on coarse masks worth refining instead of a detector's first steps:

    python benchmarks/transfiner.py --init-steps 2000 --steps 800 --seeds 0 1 --out runs/transfiner_ft

The budget is --steps (the same iterations and images for every variant, as the paper compares:
machine-independent) or --minutes (the same wall clock; a Transfiner step costs ~3x an AdaMixer
step on 2 cores, and on a shared CPU the step count in a fixed time varied by 25% between two runs
of the same model). Each run is an `edgeseg train` (one after another: two torch processes on 2 cores thrash), then
`edgeseg eval best.pt --data <thin val> --boundary` for mask AP, AP75 and boundary AP. Writes
results.json and table.md; finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

from common import write_table

EDGESEG = str(Path(sys.executable).parent / "edgeseg")
VAL = "data/thin_shapes/val"
THIN_DATA = ["data.generate=thin_shapes", "data.train=data/thin_shapes/train", f"data.val={VAL}"]
# fp32 on every CPU: bf16 autocast (`solver.amp: auto` on AMX/AVX512-BF16) gained nothing on this
# model (0.66 against 0.68 s/step on a Sapphire Rapids) and keeps runs comparable across machines
COMMON = ["solver.amp=off"]
# name -> (recipe, --set, seeds: "all" or "first")
VARIANTS = {
    "AdaMixer, coarse 28x28 head": ("adamixer_shapes", THIN_DATA, "all"),
    "Mask Transfiner (incoherent nodes, transformer)": ("transfiner_thin_shapes", [], "all"),
    "Transfiner, random nodes": ("transfiner_thin_shapes", ["model.transfiner.refine.select=random"], "first"),
    "Transfiner, most uncertain nodes": ("transfiner_thin_shapes", ["model.transfiner.refine.select=uncertain"], "first"),
    "Transfiner, per-node MLP": ("transfiner_thin_shapes", ["model.transfiner.refine.mixer=mlp"], "first"),
}


def run(out: Path, recipe: str, sets: list[str], budget: list[str], seed: int) -> dict:
    log = out / "log.jsonl"
    if not (log.is_file() and '"done": true' in log.read_text()):
        cmd = [EDGESEG, "train", recipe, "--no-progress", "--set", f"train.output_dir={out}",
               "--set", f"train.seed={seed}"]
        for s in COMMON + budget + sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
    scores = out / "eval.json"
    if not scores.is_file():
        text = subprocess.run([EDGESEG, "eval", str(out / "best.pt"), "--data", VAL, "--boundary",
                               "--out", str(out / "results.json")], check=True, capture_output=True, text=True).stdout
        # the 12-line summaries, in order: segm, bbox, boundary
        ap = [float(x) for x in re.findall(r"Average Precision  \(AP\) @\[ IoU=0.50:0.95 \| area=   all.*= (\S+)", text)]
        ap75 = [float(x) for x in re.findall(r"Average Precision  \(AP\) @\[ IoU=0.75 .*= (\S+)", text)]
        scores.write_text(json.dumps({"mask AP": ap[0] * 100, "AP75": ap75[0] * 100, "box AP": ap[1] * 100,
                                      "boundary AP": ap[2] * 100}))
    done = json.loads(log.read_text().strip().splitlines()[-1])
    return {**json.loads(scores.read_text()), "steps": done["step"], "s/step": done["train_minutes"] * 60 / done["step"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    budget = ap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="training steps per run (no time cap)")
    budget.add_argument("--minutes", type=float, help="training minutes per run (steps as many as fit)")
    ap.add_argument("--init-steps", type=int, default=0,
                    help="first train AdaMixer this many steps per seed; every variant starts from it")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--main-only", action="store_true", help="AdaMixer against Transfiner only, no ablations")
    ap.add_argument("--out", type=Path, default=Path("runs/transfiner_bench"))
    args = ap.parse_args()
    if args.steps:
        budget = [f"solver.max_iter={args.steps}", "solver.max_minutes=0"]
    else:
        budget = [f"solver.max_minutes={args.minutes}"]  # the recipe's max_iter sets the warm-up's share
    variants = dict(list(VARIANTS.items())[:2]) if args.main_only else VARIANTS

    results: dict[str, dict[int, dict]] = {}
    init = {seed: [] for seed in args.seeds}
    if args.init_steps:
        name = f"AdaMixer after {args.init_steps} steps (where every variant starts)"
        results[name] = {}
        for seed in args.seeds:
            out = args.out / f"init_seed{seed}"
            results[name][seed] = run(out, "adamixer_shapes", THIN_DATA,
                                      [f"solver.max_iter={args.init_steps}", "solver.max_minutes=0"], seed)
            init[seed] = [f"train.init={out / 'best.pt'}"]
    for name, (recipe, sets, seeds) in variants.items():
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        chosen = args.seeds if seeds == "all" else args.seeds[:1]
        results[name] = {seed: run(args.out / f"{slug}_seed{seed}", recipe, sets + init[seed], budget, seed)
                         for seed in chosen}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    keys = ("mask AP", "AP75", "boundary AP", "box AP", "steps", "s/step")
    lines = ["| variant | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, by_seed in results.items():
        cells = []
        for key in keys:
            values = [r[key] for r in by_seed.values()]
            digits = 2 if key == "s/step" else 0 if key == "steps" else 1
            spread = f" ({min(values):.{digits}f}-{max(values):.{digits}f})" if len(set(values)) > 1 else ""
            cells.append(f"{statistics.mean(values):.{digits}f}{spread}")
        lines.append(f"| {name} | {len(by_seed)} | " + " | ".join(cells) + " |")
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
