"""Where edgeseg's data folders are: ``recipes/``, ``devices/`` and ``calibration/``. Torch-free.

The repository folders are the single source. A wheel ships copies of them as package data in
``edgeseg/_data/<name>`` (setup.py's build_py copies them at build time); a source checkout or an
editable install reads the repository folders directly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_FOLDERS = ("recipes", "devices", "calibration")
_REPO = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of DATA_FOLDERS): the repository's in a checkout, else the wheel's copy."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown resource folder '{name}'; valid: {', '.join(DATA_FOLDERS)}")
    checkout = _REPO / name
    if (_REPO / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    # Installed from a wheel: pip unpacks it, so the package data is a real folder.
    return Path(str(resources.files("edgeseg") / "_data" / name))


def is_packaged(path: Path, name: str) -> bool:
    """Whether ``path`` lies directly in the folder ``name`` edgeseg ships (checkout or wheel)."""
    try:
        return Path(path).resolve().parent == resource_dir(name).resolve()
    except OSError:
        return False
