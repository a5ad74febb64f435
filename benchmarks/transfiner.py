"""Mask Transfiner vs AdaMixer's coarse 28x28 mask head on the thin-structure shapes, same training
budget, N seeds; and the paper's ablations at small scale (nodes by incoherence vs random vs most
uncertain at equal budget; transformer vs per-node MLP):

    python benchmarks/transfiner.py --minutes 20 --seeds 0 1 --out runs/transfiner_bench

Each run is an `edgeseg train` (one after another: two torch processes on 2 cores thrash), then
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


def run(out: Path, recipe: str, sets: list[str], minutes: float, seed: int) -> dict:
    log = out / "log.jsonl"
    if not (log.is_file() and '"done": true' in log.read_text()):
        cmd = [EDGESEG, "train", recipe, "--no-progress", "--set", f"train.output_dir={out}",
               "--set", f"train.seed={seed}", "--set", f"solver.max_minutes={minutes}"]
        for s in COMMON + sets:
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
    return json.loads(scores.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("runs/transfiner_bench"))
    args = ap.parse_args()

    results: dict[str, dict[int, dict]] = {}
    for name, (recipe, sets, seeds) in VARIANTS.items():
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        chosen = args.seeds if seeds == "all" else args.seeds[:1]
        results[name] = {seed: run(args.out / f"{slug}_seed{seed}", recipe, sets, args.minutes, seed) for seed in chosen}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    keys = ("mask AP", "AP75", "boundary AP", "box AP")
    lines = ["| variant | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, by_seed in results.items():
        cells = []
        for key in keys:
            values = [r[key] for r in by_seed.values()]
            spread = f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.1f}{spread}")
        lines.append(f"| {name} | {len(by_seed)} | " + " | ".join(cells) + " |")
    write_table(args.out, lines)


if __name__ == "__main__":
    main()
