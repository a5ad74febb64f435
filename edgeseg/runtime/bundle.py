"""Bundles: a folder with model artefact(s) and one ``bundle.json`` that describes them.

Torch-free. Reading a bundle checks everything a device can check before running it: the
metadata parses and has what the runtime needs, and every artefact exists with the size and
SHA-256 recorded at export (a truncated copy is caught here, not as a runtime crash).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import fail
from edgeseg.io import file_sha256

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "edgeseg-bundle/1"
LAYOUTS = ("NCHW", "NHWC")
MAX_SIDE = 8192
MAX_META_BYTES = 16 << 20
REQUIRED = ("format", "backend", "class_names", "input", "postprocess", "artifacts", "precision")


def describe_artifact(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


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

    @property
    def outputs(self) -> dict:
        """``kind``, ``names`` and ``artifact_names`` (artefact output name -> name); bundles from
        before output kinds were all SparseInst's ``query_masks``."""
        outputs = self.meta.get("outputs", {})
        return outputs if "kind" in outputs else {"kind": "query_masks", "names": ["scores", "masks"]}

    def artifact(self, role: str = "model") -> Path:
        try:
            return self.path / self.meta["artifacts"][role]["file"]
        except KeyError:
            raise fail(self.path / BUNDLE_FILE, f"no '{role}' artefact listed") from None


def is_bundle(folder: Path) -> bool:
    """A folder edgeseg may replace with a new bundle: it holds one."""
    return (folder / BUNDLE_FILE).is_file()


def read_bundle(path, verify: bool = True) -> Bundle:
    path = Path(path)
    meta_path = path / BUNDLE_FILE
    if not path.is_dir():
        raise fail(path, "bundle folder not found" if not path.exists() else f"not a bundle folder (no {BUNDLE_FILE})")
    if not meta_path.is_file():
        raise fail(meta_path, "bundle metadata missing")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise fail(meta_path, f"bundle metadata is larger than {MAX_META_BYTES >> 20} MiB; not a bundle.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise fail(meta_path, f"bundle metadata is not valid JSON ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(meta, dict):
        raise fail(meta_path, "bundle metadata must be a JSON object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise fail(meta_path, f"bundle metadata lacks {', '.join(missing)}")
    if meta["format"] != BUNDLE_FORMAT:
        raise fail(meta_path, f"unsupported bundle format {meta['format']!r} (this edgeseg reads {BUNDLE_FORMAT})")
    problem = _metadata_problem(meta)
    if problem:
        raise fail(meta_path, f"bad bundle metadata: {problem}")
    bundle = Bundle(path, meta)
    if verify:
        for role, info in meta["artifacts"].items():
            file = path / info["file"]
            if not file.is_file():
                raise fail(file, f"{role} artefact missing from the bundle")
            size = file.stat().st_size
            if size != info["bytes"]:
                raise fail(file, f"{role} artefact is {size} bytes, metadata says {info['bytes']} (truncated or replaced)")
            if file_sha256(file) != info["sha256"]:
                raise fail(file, f"{role} artefact does not match the metadata's SHA-256 (modified or corrupt)")
    return bundle


def _is_int(x, low: int, high: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and low <= x <= high


def _is_fraction(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and 0 <= x <= 1


def _metadata_problem(meta: dict) -> str | None:
    """What makes ``meta`` unusable, or None: checked before any field is used."""
    if not isinstance(meta["backend"], str):
        return "'backend' must be a string"
    names = meta["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return "'class_names' must be a non-empty list of strings"
    inp = meta["input"]
    if not isinstance(inp, dict):
        return "'input' must be an object"
    for key in ("height", "width"):
        if not _is_int(inp.get(key), 32, MAX_SIDE) or inp[key] % 32:
            return f"'input.{key}' must be a multiple of 32 between 32 and {MAX_SIDE}, got {inp.get(key)!r}"
    if inp.get("layout", "NCHW") not in LAYOUTS:
        return f"'input.layout' must be one of {', '.join(LAYOUTS)}, got {inp.get('layout')!r}"
    if not isinstance(inp.get("dynamic", False), bool):
        return "'input.dynamic' must be true or false"
    if inp.get("dynamic") and not all(_is_int(inp.get(k), 32, MAX_SIDE) for k in ("min_size", "max_size")):
        return f"a dynamic input needs integer 'input.min_size' and 'input.max_size' up to {MAX_SIDE}"
    post = meta["postprocess"]
    if not isinstance(post, dict):
        return "'postprocess' must be an object"
    for key in ("cls_threshold", "mask_threshold"):
        if not _is_fraction(post.get(key)):
            return f"'postprocess.{key}' must be a number in [0, 1], got {post.get(key)!r}"
    if "score_threshold" in post and not _is_fraction(post["score_threshold"]):
        return f"'postprocess.score_threshold' must be a number in [0, 1], got {post['score_threshold']!r}"
    if not _is_int(post.get("max_detections"), 1, 10000):
        return f"'postprocess.max_detections' must be an integer in [1, 10000], got {post.get('max_detections')!r}"
    if meta["precision"] not in ("fp32", "fp16", "int8"):
        return f"'precision' must be fp32, fp16 or int8, got {meta['precision']!r}"
    outputs = meta.get("outputs", {})
    if not isinstance(outputs, dict):
        return "'outputs' must be an object"
    if "kind" in outputs:
        from edgeseg.postprocess import OUTPUT_KINDS

        if not isinstance(outputs["kind"], str) or outputs["kind"] not in OUTPUT_KINDS:
            return f"unknown output kind {outputs['kind']!r}; this edgeseg knows {', '.join(OUTPUT_KINDS)}"
        renames = outputs.get("artifact_names", {})
        if not isinstance(renames, dict) or not all(isinstance(v, str) for v in renames.values()):
            return "'outputs.artifact_names' must map the artefact's output names to output names"
    target = meta.get("target", {})
    if not isinstance(target, dict) or not isinstance(target.get("runtime", {}), dict):
        return "'target' must be an object whose 'runtime' is an object"
    runtime = target.get("runtime", {})
    if not _is_int(runtime.get("threads", 1), 1, 1024) or not isinstance(runtime.get("device", ""), str):
        return "'target.runtime' needs an integer 'threads' >= 1 and a string 'device'"
    artifacts = meta["artifacts"]
    if not isinstance(artifacts, dict) or not artifacts:
        return "'artifacts' must be an object of {role: {file, bytes, sha256}}"
    for role, info in artifacts.items():
        if not isinstance(info, dict) or not isinstance(info.get("file"), str) or not isinstance(info.get("sha256"), str) \
                or not _is_int(info.get("bytes"), 0, 1 << 40):
            return f"artifact '{role}' must be an object with 'file', 'bytes' and 'sha256'"
        if Path(info["file"]).name != info["file"] or info["file"] in ("", ".", ".."):
            return f"artifact '{role}' file {info['file']!r} must be a plain file name inside the bundle"
    return None


def write_bundle_meta(folder: Path, meta: dict) -> None:
    """Fill in the artefacts' sizes/hashes and write ``bundle.json`` (inside a folder being built)."""
    meta = dict(meta, format=BUNDLE_FORMAT)
    meta["artifacts"] = {role: describe_artifact(folder / name) for role, name in meta["artifacts"].items()}
    (folder / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
