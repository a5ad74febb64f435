"""Benchmark report: a rich table for the terminal, and a folder with report.json, report.md and
report.png (latency breakdown per model; the primary metric, e.g. mask AP, against FPS). The plot is a matplotlib figure
(axes, ticks, units, labels that do not overlap) where matplotlib is installed (`pip install edgeseg[report]`), else drawn
with OpenCV so that a device needs no plotting library. The folder is written atomically."""

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


def _input(row) -> str:
    """The network input a model ran at (HxW), e.g. 256x448 for a 1280x720 frame at 256 px."""
    shape = row.get("input_shape") or []
    if len(shape) != 4:
        return "-"
    h, w = shape[1:3] if shape[3] == 3 else shape[2:4]
    return f"{h}x{w}"


def metric_name(result: dict) -> str:
    """The AP column's name: the models' primary metric, e.g. 'mask AP' (each kind names its own)."""
    names = {r["metric"] for r in result["results"] if r.get("metric")}
    return names.pop() if len(names) == 1 else "AP"


def _boundary(result: dict) -> bool:
    """Whether the report has a boundary AP column (bench --boundary)."""
    return any(r.get("boundary_ap") is not None for r in result["results"])


def table_rows(result: dict) -> list[list[str]]:
    rows, with_boundary = [], _boundary(result)
    for r in result["results"]:
        lat = r["latency_ms"]
        boundary = [] if not with_boundary else ["-" if r.get("boundary_ap") is None else f"{r['boundary_ap']:.2f}"]
        rows.append([
            r["name"], r["format"], r["precision"], _input(r), f"{r['size_mib']:.1f}", _ap(r), *boundary,
            f"{lat['pre']['median']:.2f}", f"{lat['infer']['median']:.2f} / {lat['infer']['p90']:.2f} / {lat['infer']['p99']:.2f}",
            f"{lat['post']['median']:.2f}", f"{r['fps_model_only']:.1f}", f"{r['fps_end_to_end']:.1f}",
            f"{r['speedup_model_only']:.2f}x", "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}",
        ])
    return rows


HEADERS = ["model", "format", "precision", "input", "MiB", "AP", "pre ms", "infer ms (med/p90/p99)", "post ms",
           "FPS model", "FPS e2e", "vs first", "peak MiB"]


def headers(result: dict) -> list[str]:
    names = [metric_name(result) if h == "AP" else h for h in HEADERS]
    if _boundary(result):
        names.insert(HEADERS.index("AP") + 1, "boundary AP")
    return names


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
    console.print(f"{s['cpu']} ({s['cores']} cores; {' '.join(s.get('cpu_flags') or [])}), threads {s['threads']}, load {s['load_average']} -> "
                  f"{s['load_average_after']}, {result['frames']} frames of {', '.join(s.get('frame_sizes', []))}, "
                  f"deploy threshold {_scores(result)}")


def _scores(result: dict) -> str:
    return ", ".join(sorted({f"{r['score_threshold']:g}" for r in result["results"] if r.get("score_threshold") is not None})) or "n/a"


def markdown(result: dict, renderer: str | None = None) -> str:
    s = result["system"]
    lines = ["# edgeseg bench", "",
             f"- machine: {s['cpu']}, {s['cores']} cores, {s['machine']}, {s['os']}; "
             f"flags: {' '.join(s.get('cpu_flags') or []) or 'n/a'}",
             f"- threads: {s['threads']}; load average before {s['load_average']}, after {s['load_average_after']}",
             f"- frames: {result['frames']} (warm-up {result['warmup']}), measured interleaved; "
             f"data: {result['data'] or 'synthetic frames'}",
             f"- frame size: {', '.join(s.get('frame_sizes', [])) or 'n/a'} (preprocessing and postprocessing run at it); "
             f"deploy threshold: {_scores(result)} (AP keeps evaluation's threshold)",
             f"- runtimes: {', '.join(f'{k} {v}' for k, v in s['runtimes'].items())}"]
    if s["board"]:
        lines.append(f"- board: {', '.join(f'{k}: {v}' for k, v in s['board'].items())}")
    if s["clocks"]:
        lines.append(f"- clocks: {', '.join(f'{k} {v}' for k, v in s['clocks'].items())}")
    if s["temperatures_c"]:
        lines.append(f"- temperatures (C): {', '.join(f'{k} {v:.0f}' for k, v in s['temperatures_c'].items())}")
    lines += ["", "| " + " | ".join(headers(result)) + " |", "|" + "---|" * len(headers(result))]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "![latency and accuracy](report.png)", ""]
    if renderer:
        lines += [f"Plot drawn with {renderer}.", ""]
    return "\n".join(lines)


def plot(result: dict) -> np.ndarray:
    """The OpenCV fallback (no matplotlib, e.g. on a device). Left: stacked median latency per model. Right: the
    primary metric against end-to-end FPS."""
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


def render_png(result: dict) -> tuple[bytes, str]:
    """report.png's bytes and the renderer that drew them: matplotlib where importable, else OpenCV."""
    try:
        import matplotlib  # optional: `pip install edgeseg[report]`
    except ImportError:
        ok, png = cv2.imencode(".png", plot(result))
        return png.tobytes(), "OpenCV (matplotlib not installed)"
    import io

    buf = io.BytesIO()
    fig = figure(result)
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue(), f"matplotlib {matplotlib.__version__}"


def _rgb(color) -> tuple[float, float, float]:
    return tuple(c / 255 for c in color)


def _short(name: str, n: int) -> str:
    return name if len(name) <= n else name[: n - 1] + "\u2026"


def figure(result: dict):
    """The matplotlib figure (Agg canvas: no display, no pyplot state). Left: horizontal stacked bars of the median
    latency per model (pre/infer/post). Right: the primary metric against end-to-end FPS, one labelled point per model;
    the labels (texts with gid "label") do not overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = result["results"]
    n = len(rows)
    fig = Figure(figsize=(12, max(4.5, 1.9 + 0.42 * n)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    bars, scatter = fig.subplots(1, 2, width_ratios=(1, 1.15))

    ys = np.arange(n)
    left = np.zeros(n)
    for key, color in STAGES:
        ms = np.array([r["latency_ms"][key]["median"] for r in rows])
        bars.barh(ys, ms, left=left, color=_rgb(color), height=0.6, label=key)
        left += ms
    for y, total in zip(ys, left):
        bars.annotate(f"{total:.1f} ms", (total, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    bars.set_yticks(ys, [_short(r["name"], 28) for r in rows])
    bars.set_ylim(n - 0.5, -0.5)  # first model on top
    bars.set_xlim(0, (left.max() or 1.0) * 1.22)
    bars.set_xlabel("median latency per frame (ms)")
    bars.set_title("latency per frame by stage")
    bars.legend(ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.09), fontsize=9, frameon=False)
    bars.grid(axis="x", alpha=0.3)
    bars.set_axisbelow(True)

    metric = metric_name(result)
    scatter.set_title(f"{metric} vs end-to-end FPS")
    scatter.set_xlabel("end-to-end FPS (frames/s: pre + infer + post)")
    scatter.set_ylabel(f"{metric} (COCO, 0-100)")
    measured = [(i, r) for i, r in enumerate(rows) if r["ap"] is not None]
    if not measured:
        scatter.text(0.5, 0.5, f"{metric} not measured\n(run edgeseg bench with --data)", transform=scatter.transAxes,
                     ha="center", va="center", fontsize=12, color="0.3", gid="no-ap")
        scatter.set_xticks([])
        scatter.set_yticks([])
        return fig
    fps = np.array([r["fps_end_to_end"] for _, r in measured])
    aps = np.array([r["ap"] for _, r in measured], float)
    colors = [_rgb(PALETTE[i % len(PALETTE)]) for i, _ in measured]
    scatter.scatter(fps, aps, s=50, c=colors, edgecolors="black", linewidths=0.6, zorder=3)
    pad = max(1.0, 0.12 * (aps.max() - aps.min()))
    scatter.set_xlim(0, fps.max() * 1.3)
    scatter.set_ylim(aps.min() - pad, aps.max() + pad * (1 + 0.35 * len(measured) ** 0.5))
    scatter.grid(alpha=0.3)
    scatter.set_axisbelow(True)
    missing = [r["name"] for r in rows if r["ap"] is None]
    if missing:
        scatter.text(0.01, 0.01, f"{metric} not measured: {', '.join(_short(m, 20) for m in missing)}",
                     transform=scatter.transAxes, fontsize=8, color="0.3")
    labels = [(f, a, _short(r["name"], 24), c) for (_, r), f, a, c in zip(measured, fps, aps, colors)]
    _place_labels(fig, scatter, labels)
    return fig


def _place_labels(fig, ax, points) -> None:
    """Put each point's name next to it where it overlaps no other label, no marker and stays inside the axes:
    candidates right, left, above and below at growing distances, nearest first (greedy, points from the top);
    a label moved away from its point gets a leader line. Done in display pixels once the layout is fixed."""
    fig.canvas.draw()  # lay out once, then freeze it, so that pixel positions stay valid
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px = [tuple(ax.transData.transform((f, a))) for f, a, _, _ in points]
    r, gap = 6.0, 3.0  # marker half-size, spacing (pixels)
    taken = [(x - r, y - r, x + r, y + r) for x, y in px]

    def free(box) -> bool:
        x0, y0, x1, y1 = box
        if x0 < frame.x0 + 2 or x1 > frame.x1 - 2 or y0 < frame.y0 + 2 or y1 > frame.y1 - 2:
            return False
        return all(x1 <= a0 or x0 >= a1 or y1 <= b0 or y0 >= b1 for a0, b0, a1, b1 in taken)

    for i in sorted(range(len(points)), key=lambda i: (-px[i][1], px[i][0])):
        f, a, name, color = points[i]
        probe = ax.text(0, 0, name, fontsize=9)
        w, h = probe.get_window_extent(renderer).size
        probe.remove()
        x, y = px[i]
        candidates = []  # (distance, dx, dy, leader line) of the label's lower-left corner from the point
        for k in range(60):
            step = k * (h + gap)
            for dx in (r + gap, -r - gap - w):
                for dy in (step - h / 2,) if k == 0 else (step - h / 2, -step - h / 2):
                    candidates.append((step + (0 if dx > 0 else 0.5), dx, dy, k > 1))
            for dy in (r + step, -r - h - step):  # centred above / below
                candidates.append((step + 0.25 + w / 4, -w / 2, dy, k > 1))
        candidates.sort(key=lambda c: c[0])
        _, dx, dy, leader = next((c for c in candidates if free((x + c[1], y + c[2], x + c[1] + w, y + c[2] + h))),
                                 candidates[0])
        taken.append((x + dx, y + dy, x + dx + w, y + dy + h))
        arrow = {"arrowstyle": "-", "color": color, "lw": 0.9, "shrinkA": 0, "shrinkB": 4} if leader else None
        ann = ax.annotate(name, (f, a), xytext=(dx * 72 / fig.dpi, dy * 72 / fig.dpi), textcoords="offset points",
                          ha="left", va="bottom", fontsize=9, arrowprops=arrow, gid="label", annotation_clip=False)
        ann.set_in_layout(False)


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
        png, renderer = render_png(result)
        (tmp / "report.md").write_text(markdown(result, renderer))
        (tmp / "report.png").write_bytes(png)
    return folder
