"""Device profiles: ``devices/<name>/profile.yaml`` names a format and its defaults for a device
family, so ``edgeseg export --target raspberrypi`` needs no other flags. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.config import build_typed, read_yaml
from edgeseg.errors import fail
from edgeseg.resources import resource_dir

DEVICES_DIR = resource_dir("devices")  # the repo's devices/ in a checkout, the wheel's copy otherwise
PROFILE_FILE = "profile.yaml"


@dataclass
class RuntimeDefaults:
    threads: int = 0  # 0: the runtime's default (all cores)
    device: str = ""  # backend device name, e.g. CPU / GPU / NPU for OpenVINO, "" = default


@dataclass
class DeviceProfile:
    name: str = ""
    description: str = ""
    format: str = "onnx"
    precision: str = "fp32"
    imgsz: str = ""  # "H" or "H,W"; "" = the recipe's test size
    dynamic: bool = False
    opset: int = 18
    calib: str = ""  # "" = the recipe's training set
    runtime: RuntimeDefaults = field(default_factory=RuntimeDefaults)


def profile_names(root: Path = DEVICES_DIR) -> list[str]:
    return sorted(p.parent.name for p in root.glob(f"*/{PROFILE_FILE}"))


def load_profile(name: str, root: Path = DEVICES_DIR) -> DeviceProfile | None:
    """The profile called ``name``, or None when there is no such device folder."""
    path = root / name / PROFILE_FILE
    if not path.is_file():
        return None
    profile = build_typed(DeviceProfile, read_yaml(path), path)
    if profile.name and profile.name != name:
        raise fail(path, f"profile name '{profile.name}' differs from its folder '{name}'")
    profile.name = name
    return profile
