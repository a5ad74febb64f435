"""AdaMixer's two central ablations at small scale (paper Tables 2 and 4), same budget, N seeds:

- adaptive mixing (M and S generated from each query) vs static learned M/S;
- adaptive 3D sampling over all levels vs sampling a single level.

    python benchmarks/adamixer_ablations.py --minutes 6 --seeds 0 1 --out runs/adamixer_ablations

Each run is `edgeseg train adamixer_shapes` with the variant's --set, evaluated every
--eval-period steps on the shapes val split. Runs go one after another (two torch processes on
2 cores thrash). Writes results.json, a markdown table (box AP mean and spread per variant) and
ap_vs_step.png. Finished runs are reused when their log says they finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import new_plot, write_table

VARIANTS = {
    "adaptive 3D (AdaMixer)": [],
    "static M/S": ["model.adamixer.adaptive_mixing=false"],
    "single level (stride 16)": ["model.adamixer.single_level=1"],
}


def run(out: Path, seed: int, sets: list[str], minutes: float, eval_period: int) -> list[dict]:
    log = out / "log.jsonl"
    if not (log.is_file() and '"done": true' in log.read_text()):
        cmd = [str(Path(sys.executable).parent / "edgeseg"), "train", "adamixer_shapes", "--no-progress",
               "--set", f"train.output_dir={out}", "--set", f"train.seed={seed}",
               "--set", f"solver.max_minutes={minutes}", "--set", f"train.eval_period={eval_period}",
               "--set", "model.adamixer.mask_head.enabled=false"]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
    return [json.loads(line) for line in log.read_text().splitlines() if '"eval"' in line]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=6.0, help="training budget per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--eval-period", type=int, default=150)
    ap.add_argument("--out", type=Path, default=Path("runs/adamixer_ablations"))
    args = ap.parse_args()

    results = {}
    for name, sets in VARIANTS.items():
        slug = name.split(" (")[0].replace(" ", "_").replace("/", "")
        results[name] = {seed: run(args.out / f"{slug}_seed{seed}", seed, sets, args.minutes, args.eval_period)
                         for seed in args.seeds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))

    lines = ["| variant | box AP per seed | mean | spread (max - min) |", "|---|---|---|---|"]
    for name, by_seed in results.items():
        final = [evals[-1]["eval"]["AP"] * 100 for evals in by_seed.values() if evals]
        per = ", ".join(f"{v:.1f}" for v in final)
        spread = max(final) - min(final) if final else float("nan")
        lines.append(f"| {name} | {per} | {statistics.mean(final):.1f} | {spread:.1f} |")
    write_table(args.out, lines)

    fig, ax = new_plot()
    for (name, by_seed), color in zip(results.items(), ("C0", "C1", "C2")):
        for seed, evals in by_seed.items():
            ax.plot([e["step"] for e in evals], [e["eval"]["AP"] * 100 for e in evals], color=color,
                    alpha=0.8, label=name if seed == args.seeds[0] else None)
    ax.set_xlabel("step")
    ax.set_ylabel("box AP (shapes val)")
    ax.set_title(f"AdaMixer ablations, {args.minutes:g} min per run, seeds {args.seeds}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "ap_vs_step.png", dpi=120)


if __name__ == "__main__":
    main()
