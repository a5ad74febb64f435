"""The demo's end-to-end rate against the model-only rate `edgeseg bench` reports, same bundle,
source size and threads, in alternating rounds (a shared VM's speed drifts by 10% from minute to
minute: each round's pair sees the same machine).

    python benchmarks/demo_vs_bench.py BUNDLE [BUNDLE ...] --source synthetic:300:1280x720 \
        [--source VIDEO] [--threads 1] [--rounds 3]

Per round and source: `run_bench` on frames of the source's size (model-only FPS), then
`run_demo` on the source (end-to-end FPS and its stage medians). Prints the median over rounds of
demo FPS / bench model-only FPS, then the CPU and its flags.
"""

from __future__ import annotations

import argparse
import json
import statistics

from edgeseg.bench import run_bench
from edgeseg.bench.system import system_info
from edgeseg.demo.run import run_demo
from edgeseg.demo.sources import parse_source


def frame_size(source: str) -> str:
    """The WxH of the source's first frame, for `edgeseg bench --frame-size`."""
    src = parse_source(source)
    src.open()
    try:
        status, frame = src.read()
    finally:
        src.close()
    if status != "ok":
        raise SystemExit(f"{source}: cannot read a frame")
    return f"{frame.shape[1]}x{frame.shape[0]}"


def measure(bundle: str, source: str, size: str, threads: int, rounds: int, frames: int) -> dict:
    bench_fps, demo_fps, ratios, stages = [], [], [], []
    for _ in range(rounds):
        row = run_bench([bundle], frames=frames, threads=threads, frame_size=size, progress=False,
                        log=lambda *_: None)["results"][0]
        demo = run_demo(bundle, source, show=False, threads=threads, max_frames=frames, log=lambda *_: None)
        bench_fps.append(row["fps_model_only"])
        demo_fps.append(demo["fps_end_to_end"])
        ratios.append(demo["fps_end_to_end"] / row["fps_model_only"])
        stages.append(demo["median_ms"])
    return {"bundle": bundle, "source": source, "frame_size": size, "threads": threads,
            "bench_model_only_fps": [round(v, 2) for v in bench_fps], "demo_fps": demo_fps,
            "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
            "demo_stage_ms": {k: round(statistics.median(s[k] for s in stages), 2) for k in stages[0]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--source", action="append", required=True, help="A demo source (repeatable).")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    rows = []
    for source in args.source:
        size = frame_size(source)
        for bundle in args.bundles:
            r = measure(bundle, source, size, args.threads, args.rounds, args.frames)
            rows.append(r)
            print(f"{bundle} on {source} ({size}, {args.threads} thread(s)): demo / bench model-only = "
                  f"{r['ratio_median']:.3f} (rounds {r['ratios']}); demo stages {r['demo_stage_ms']}", flush=True)
    system = system_info(args.threads)
    print(json.dumps({"cpu": system["cpu"], "flags": system.get("cpu_flags"), "rows": rows}))


if __name__ == "__main__":
    main()
