"""On-device FPS report: ``run_bench`` measures, ``write_report`` / ``print_table`` present."""

from edgeseg.bench.measure import run_bench
from edgeseg.bench.report import print_table, write_report

__all__ = ["print_table", "run_bench", "write_report"]
