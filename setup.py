"""Packaging glue only (metadata lives in pyproject.toml): a wheel ships the repository's
recipes/, devices/ and calibration/ folders as package data in edgeseg/_data/ (read through
edgeseg/resources.py). The repository folders stay the single source; nothing is copied into the
source tree, and an editable install reads them in place."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("recipes", "devices", "calibration")  # = edgeseg.resources.DATA_FOLDERS
ROOT = Path(__file__).resolve().parent


def data_files() -> list[Path]:
    """The files of DATA_FOLDERS, relative to the repository root."""
    return [p.relative_to(ROOT) for name in DATA_FOLDERS for p in sorted((ROOT / name).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts]


class build_py_with_data(build_py):
    def _data_targets(self):
        if getattr(self, "editable_mode", False):
            return []  # an editable install reads the repository folders directly
        return [(ROOT / rel, Path(self.build_lib, "edgeseg", "_data", rel)) for rel in data_files()]

    def run(self):
        super().run()
        for src, dst in self._data_targets():
            self.mkpath(str(dst.parent))
            self.copy_file(str(src), str(dst))  # keeps the mode: run.sh stays executable

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [str(dst) for _, dst in self._data_targets()]


setup(cmdclass={"build_py": build_py_with_data})
