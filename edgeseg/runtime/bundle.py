"""Bundles: a folder with model artefact(s) and one ``bundle.json`` that describes them.

Torch-free. Reading a bundle checks everything a device can check before running it: the
metadata parses and has what the runtime needs, and every artefact exists with the size and
SHA-256 recorded at export (a truncated copy is caught here, not as a runtime crash).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import fail

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "edgeseg-bundle/1"
REQUIRED = ("format", "backend", "class_names", "input", "postprocess", "artifacts", "precision")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_artifact(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path)}


@dataclass
class Bundle:
    path: Path
    meta: dict

    @property
    def backend(self) -> str:
        return self.meta["backend"]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def input(self) -> dict:
        return self.meta["input"]

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.input["height"]), int(self.input["width"])

    @property
    def dynamic(self) -> bool:
        return bool(self.input.get("dynamic", False))

    def artifact(self, role: str = "model") -> Path:
        try:
            return self.path / self.meta["artifacts"][role]["file"]
        except KeyError:
            raise fail(self.path / BUNDLE_FILE, f"no '{role}' artefact listed") from None


def read_bundle(path, verify: bool = True) -> Bundle:
    path = Path(path)
    meta_path = path / BUNDLE_FILE
    if not path.is_dir():
        raise fail(path, "bundle folder not found" if not path.exists() else f"not a bundle folder (no {BUNDLE_FILE})")
    if not meta_path.is_file():
        raise fail(meta_path, "bundle metadata missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise fail(meta_path, f"bundle metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise fail(meta_path, "bundle metadata must be a JSON object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise fail(meta_path, f"bundle metadata lacks {', '.join(missing)}")
    if meta["format"] != BUNDLE_FORMAT:
        raise fail(meta_path, f"unsupported bundle format {meta['format']!r} (this edgeseg reads {BUNDLE_FORMAT})")
    bundle = Bundle(path, meta)
    if verify:
        for role, info in meta["artifacts"].items():
            file = path / info["file"]
            if not file.is_file():
                raise fail(file, f"{role} artefact missing from the bundle")
            size = file.stat().st_size
            if size != info["bytes"]:
                raise fail(file, f"{role} artefact is {size} bytes, metadata says {info['bytes']} (truncated or replaced)")
            if sha256(file) != info["sha256"]:
                raise fail(file, f"{role} artefact does not match the metadata's SHA-256 (modified or corrupt)")
    return bundle


def write_bundle_meta(folder: Path, meta: dict) -> None:
    """Fill in the artefacts' sizes/hashes and write ``bundle.json`` (inside a folder being built)."""
    meta = dict(meta, format=BUNDLE_FORMAT)
    meta["artifacts"] = {role: describe_artifact(folder / name) for role, name in meta["artifacts"].items()}
    (folder / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
