"""Peak resident memory of a process that loads one model and runs it: what a device needs.

Run in a fresh interpreter per model (``python -m edgeseg.bench.memory MODEL``), so one model's
allocations do not hide in another's: the figure includes Python, numpy, OpenCV and the runtime.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def peak_memory_mib(model: str, threads: int | None = None, device: str | None = None, runs: int = 3) -> float | None:
    args = [sys.executable, "-m", "edgeseg.bench.memory", str(model), str(threads or 0), device or "", str(runs)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1])["peak_mib"] if done.returncode == 0 and lines else None


def main(model: str, threads: str, device: str, runs: str) -> None:
    from edgeseg.demo.sources import SyntheticSource
    from edgeseg.predictor import load_predictor

    predictor = load_predictor(model, device or None, int(threads) or None)
    frame = SyntheticSource(frames=1).frame(0)
    for _ in range(int(runs)):
        predictor(frame)
    print(json.dumps({"peak_mib": round(_peak_kib() / 1024, 1)}))


def _peak_kib() -> float:
    """VmHWM: this process image's high-water mark. ru_maxrss is no good here: Linux carries it
    across fork and exec, so a child of a big process (a training run) reports the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


if __name__ == "__main__":
    main(*sys.argv[1:5])
