"""What the machine was doing during a benchmark: CPU, load, runtimes, and on boards such as a
Jetson or a Raspberry Pi the model, power mode, clocks and temperatures. Torch-free; every probe
is optional and a missing one is simply left out."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "openvino", "ai-edge-litert", "tensorrt", "torch",
                    "numpy", "opencv-python-headless", "opencv-python")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# The instruction sets that decide how fast FP32/BF16/INT8 run: name them with every speed figure.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
               "asimd", "asimddp", "i8mm", "bf16", "sve")


def cpu_flags() -> list[str]:
    """The speed-relevant ISA flags of /proc/cpuinfo (x86 'flags', Arm 'Features')."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            present = set(line.split(":", 1)[1].split())
            return [f for f in SPEED_FLAGS if f in present]
    return []


def runtime_versions() -> dict:
    found = {}
    for package in RUNTIME_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def temperatures() -> dict:
    temps = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        kind, value = _read(zone / "type"), _read(zone / "temp")
        if kind and value and value.lstrip("-").isdigit():
            temps[kind] = int(value) / 1000
    return temps


def clocks() -> dict:
    out = {}
    cpu = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if cpu and cpu.isdigit():
        out["cpu0_mhz"] = int(cpu) / 1000
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        out["cpu_governor"] = governor
    for dev in Path("/sys/class/devfreq").glob("*"):  # Jetson GPU (e.g. 17000000.gpu), NPUs
        freq = _read(dev / "cur_freq")
        if freq and freq.isdigit():
            out[f"{dev.name}_mhz"] = int(freq) / 1e6
    return out


def board() -> dict:
    info = {}
    model = _read("/proc/device-tree/model")  # Jetson and Raspberry Pi both publish this
    if model:
        info["model"] = model
    release = _read("/etc/nv_tegra_release")
    if release:
        info["l4t"] = release.splitlines()[0]
    if shutil.which("nvpmodel"):
        try:
            query = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5)
            info["power_mode"] = " ".join(query.stdout.split())
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def system_info(threads: int | None) -> dict:
    return {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "threads": threads or "runtime default", "load_average": load_average(),
        "runtimes": runtime_versions(), "board": board(), "clocks": clocks(), "temperatures_c": temperatures(),
    }
