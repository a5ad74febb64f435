"""What the training benchmarks share: the Markdown table they write and print, and a headless plot."""

from __future__ import annotations

from pathlib import Path


def write_table(out: Path, lines: list[str]) -> str:
    """Write ``out/table.md`` from Markdown table lines, print it, and return it."""
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    print(table)
    return table


def new_plot(figsize=(6, 4)):
    """(figure, axes) drawn without a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)
