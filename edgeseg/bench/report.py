"""Benchmark report: a rich table for the terminal, and a folder with report.json, report.md and
report.png (latency breakdown per model; the primary metric, e.g. mask AP, against FPS). The plot is drawn with OpenCV so
that a device needs no plotting library. The folder is written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgeseg.io import atomic_path
from edgeseg.vis import PALETTE

STAGES = (("pre", (0, 130, 200)), ("infer", (230, 25, 75)), ("post", (60, 180, 75)))


def _ap(row) -> str:
    return "-" if row["ap"] is None else f"{row['ap']:.2f}"


def metric_name(result: dict) -> str:
    """The AP column's name: the models' primary metric, e.g. 'mask AP' (each kind names its own)."""
    names = {r["metric"] for r in result["results"] if r.get("metric")}
    return names.pop() if len(names) == 1 else "AP"


def table_rows(result: dict) -> list[list[str]]:
    rows = []
    for r in result["results"]:
        lat = r["latency_ms"]
        rows.append([
            r["name"], r["format"], r["precision"], f"{r['size_mib']:.1f}", _ap(r),
            f"{lat['pre']['median']:.2f}", f"{lat['infer']['median']:.2f} / {lat['infer']['p90']:.2f} / {lat['infer']['p99']:.2f}",
            f"{lat['post']['median']:.2f}", f"{r['fps_model_only']:.1f}", f"{r['fps_end_to_end']:.1f}",
            f"{r['speedup_model_only']:.2f}x", "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}",
        ])
    return rows


HEADERS = ["model", "format", "precision", "MiB", "AP", "pre ms", "infer ms (med/p90/p99)", "post ms",
           "FPS model", "FPS e2e", "vs first", "peak MiB"]


def headers(result: dict) -> list[str]:
    return [metric_name(result) if h == "AP" else h for h in HEADERS]


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgeseg bench (medians; ratios against the first model)")
    for h in headers(result):
        table.add_column(h, justify="left" if h in ("model", "format", "precision") else "right")
    for row in table_rows(result):
        table.add_row(*row)
    import sys

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)  # logs: keep rows on one line
    console.print(table)
    s = result["system"]
    console.print(f"{s['cpu']} ({s['cores']} cores), threads {s['threads']}, load {s['load_average']} -> "
                  f"{s['load_average_after']}, {result['frames']} frames")


def markdown(result: dict) -> str:
    s = result["system"]
    lines = ["# edgeseg bench", "",
             f"- machine: {s['cpu']}, {s['cores']} cores, {s['machine']}, {s['os']}",
             f"- threads: {s['threads']}; load average before {s['load_average']}, after {s['load_average_after']}",
             f"- frames: {result['frames']} (warm-up {result['warmup']}), measured interleaved; "
             f"data: {result['data'] or 'synthetic frames'}",
             f"- runtimes: {', '.join(f'{k} {v}' for k, v in s['runtimes'].items())}"]
    if s["board"]:
        lines.append(f"- board: {', '.join(f'{k}: {v}' for k, v in s['board'].items())}")
    if s["clocks"]:
        lines.append(f"- clocks: {', '.join(f'{k} {v}' for k, v in s['clocks'].items())}")
    if s["temperatures_c"]:
        lines.append(f"- temperatures (C): {', '.join(f'{k} {v:.0f}' for k, v in s['temperatures_c'].items())}")
    lines += ["", "| " + " | ".join(headers(result)) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "![latency and accuracy](report.png)", ""]
    return "\n".join(lines)


def plot(result: dict) -> np.ndarray:
    """Left: stacked median latency per model. Right: the primary metric against end-to-end FPS."""
    rows = result["results"]
    h = max(320, 90 + 40 * len(rows))
    img = np.full((h, 1100, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    black = (0, 0, 0)
    cv2.putText(img, "median latency per frame (ms)", (10, 22), font, 0.55, black, 1, cv2.LINE_AA)
    worst = max(sum(r["latency_ms"][k]["median"] for k, _ in STAGES) for r in rows) or 1.0
    x0, width = 210, 360
    for i, r in enumerate(rows):
        y = 50 + 40 * i
        cv2.putText(img, r["name"][:26], (10, y + 18), font, 0.42, black, 1, cv2.LINE_AA)
        x = x0
        for key, color in STAGES:
            w = int(round(width * r["latency_ms"][key]["median"] / worst))
            cv2.rectangle(img, (x, y), (x + w, y + 26), color[::-1], cv2.FILLED)
            x += w
        total = sum(r["latency_ms"][k]["median"] for k, _ in STAGES)
        cv2.putText(img, f"{total:.1f}", (x + 6, y + 18), font, 0.42, black, 1, cv2.LINE_AA)
    for j, (key, color) in enumerate(STAGES):
        cv2.rectangle(img, (x0 + 110 * j, h - 24), (x0 + 110 * j + 14, h - 10), color[::-1], cv2.FILLED)
        cv2.putText(img, key, (x0 + 110 * j + 20, h - 12), font, 0.42, black, 1, cv2.LINE_AA)
    _scatter(img, rows, (640, 40, 1080, h - 40), metric_name(result))
    return img


def _scatter(img, rows, box, metric: str) -> None:
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    left, top, right, bottom = box
    cv2.putText(img, f"{metric} vs end-to-end FPS", (left, 22), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (right, bottom), (160, 160, 160), 1)
    fps = [r["fps_end_to_end"] for r in rows]
    aps = [r["ap"] for r in rows]
    if any(a is None for a in aps):
        cv2.putText(img, "no --data: AP not measured", (left + 10, top + 30), font, 0.45, black, 1, cv2.LINE_AA)
        return
    f_lo, f_hi = 0.0, max(fps) * 1.15
    a_lo, a_hi = min(aps) - 1.0, max(aps) + 1.0
    for i, (f, a) in enumerate(zip(fps, aps)):
        px = int(left + (f - f_lo) / (f_hi - f_lo) * (right - left))
        py = int(bottom - (a - a_lo) / (a_hi - a_lo) * (bottom - top))
        color = PALETTE[i % len(PALETTE)][::-1]
        cv2.circle(img, (px, py), 6, color, cv2.FILLED)
        dy = -8 - 14 * (i % 3)  # stagger labels of neighbouring points
        cv2.line(img, (px, py), (px + 6, py + dy + 4), color, 1)
        cv2.putText(img, rows[i]["name"][:18], (min(px + 8, right - 120), py + dy), font, 0.38, color, 1, cv2.LINE_AA)
    cv2.putText(img, f"FPS 0..{f_hi:.0f}", (left, bottom + 18), font, 0.42, black, 1, cv2.LINE_AA)
    cv2.putText(img, f"{metric} {a_lo:.1f}..{a_hi:.1f}", (right - 130, bottom + 18), font, 0.42, black, 1, cv2.LINE_AA)


REPORT_FILES = {"report.json", "report.md", "report.png"}


def is_report(folder: Path) -> bool:
    """A folder that `edgeseg bench` wrote: the report files and nothing else."""
    names = {p.name for p in folder.iterdir()}
    return "report.json" in names and names <= REPORT_FILES


def write_report(folder, result: dict) -> Path:
    folder = Path(folder)
    with atomic_path(folder, is_report, "bench report") as tmp:
        tmp.mkdir()
        (tmp / "report.json").write_text(json.dumps(result, indent=2) + "\n")
        (tmp / "report.md").write_text(markdown(result))
        ok, png = cv2.imencode(".png", plot(result))
        (tmp / "report.png").write_bytes(png.tobytes())
    return folder
