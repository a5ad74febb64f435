"""Live demo: frame sources, a capture thread and the render loop. Torch-free."""

from edgeseg.demo.run import run_demo
from edgeseg.demo.sources import parse_source

__all__ = ["parse_source", "run_demo"]
