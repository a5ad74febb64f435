"""``edgeseg export``: checkpoint -> bundle for a target device.

A target is a device-level name (``onnx``, ``openvino``, ``jetson``, ...) that picks a format
and its defaults. Each format module has the same small interface: ``is_available()``,
``export(job) -> dict`` (writes artefacts into ``job.folder``, returns metadata) and
``load(bundle)`` (a runtime predictor). This module owns what they share: the model graph,
calibration, the accuracy gate and the atomic bundle write.
"""

from __future__ import annotations

import importlib
import platform
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeseg import __version__
from edgeseg.errors import EdgesegError
from edgeseg.io import atomic_path


@dataclass(frozen=True)
class Target:
    format: str
    precision: str = "fp32"
    dynamic: bool = False
    opset: int = 18
    layout: str = "NCHW"
    imgsz: str = ""
    calib: str = ""
    runtime: dict = field(default_factory=dict)  # defaults the device runtime reads from the bundle


# Format-level targets; device-level ones (jetson, raspberrypi, intel, generic) are profiles in devices/.
TARGETS = {
    "onnx": Target("onnx", dynamic=True),
    "openvino": Target("openvino", dynamic=True),
    "tflite": Target("tflite", layout="NHWC"),
    "tensorrt": Target("tensorrt", precision="fp16", opset=17),
}
FORMATS = {"onnx": "edgeseg.export.onnx", "openvino": "edgeseg.export.openvino",
           "tensorrt": "edgeseg.export.tensorrt", "tflite": "edgeseg.export.tflite"}
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportJob:
    model: object  # DeployModel (torch), ppm in export form
    recipe: object
    class_names: list[str]
    input_hw: tuple[int, int]
    dynamic: bool
    precision: str
    opset: int
    layout: str
    folder: Path
    calib: object | None = None
    log: object = print
    exclude: list[str] = field(default_factory=list)  # layers kept in float (accuracy fallback)


def resolve_target(name: str, fmt: str | None = None) -> Target:
    """A format name, or a device profile from ``devices/``; ``fmt`` overrides the format."""
    from dataclasses import asdict

    from edgeseg.devices import load_profile, profile_names

    if name in TARGETS:
        target = TARGETS[name]
    else:
        profile = load_profile(name) if name and "/" not in name else None
        if profile is None:
            raise EdgesegError(f"unknown target '{name}'; valid: {', '.join([*TARGETS, *profile_names()])}")
        if profile.format not in FORMATS:
            raise EdgesegError(f"device profile '{name}' names unknown format '{profile.format}'")
        target = Target(profile.format, profile.precision, profile.dynamic, profile.opset,
                        TARGETS[profile.format].layout, profile.imgsz, profile.calib,
                        {k: v for k, v in asdict(profile.runtime).items() if v})
    if fmt and fmt != target.format:
        if fmt not in FORMATS:
            raise EdgesegError(f"unknown format '{fmt}'; valid: {', '.join(FORMATS)}")
        base = TARGETS[fmt]
        target = Target(fmt, target.precision if target.precision in format_module(fmt).PRECISIONS else base.precision,
                        base.dynamic, base.opset, base.layout, target.imgsz, target.calib)
    return target


def format_module(name: str):
    if name not in FORMATS:
        raise EdgesegError(f"unknown format '{name}'; valid: {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[name])


def parse_imgsz(text: str | None, default: int) -> tuple[int, int]:
    if not text:
        return default, default
    try:
        parts = [int(p) for p in str(text).replace("x", ",").split(",")]
    except ValueError:
        raise EdgesegError(f"--imgsz {text}: expected H or H,W") from None
    h, w = (parts * 2)[:2]
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise EdgesegError(f"--imgsz {text}: height and width must be positive multiples of 32")
    return h, w


def _deploy_model(checkpoint):
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.models.registry import DeployModel

    _, recipe, class_names = load_model(checkpoint)
    recipe.model.encoder.ppm_pool = "export"  # same numbers, plain MatMul instead of AdaptiveAvgPool
    model, _, _ = load_model(checkpoint, recipe)
    return DeployModel(model).eval(), recipe, class_names


def export_bundle(checkpoint, target: str, out, precision: str | None = None, imgsz: str | None = None,
                  calib: str | None = None, data: str | None = None, max_drop: float | None = None,
                  fmt: str | None = None, static: bool = False, log=print) -> Path:
    spec = resolve_target(target, fmt)
    if static:
        spec = replace(spec, dynamic=False)
    module = format_module(spec.format)
    if not module.is_available():
        raise EdgesegError(f"target '{target}' needs its export tools: {module.INSTALL_HINT}")
    precision = precision or spec.precision
    if precision not in PRECISIONS or precision not in module.PRECISIONS:
        raise EdgesegError(f"--precision {precision}: {spec.format} supports {', '.join(module.PRECISIONS)}")
    model, recipe, class_names = _deploy_model(checkpoint)
    input_hw = parse_imgsz(imgsz or spec.imgsz, recipe.data.min_size_test // 32 * 32 or 640)
    calib_set = None
    if precision == "int8":
        from edgeseg.export.calibration import resolve_calibration

        calib_set = resolve_calibration(calib or spec.calib or recipe.data.train, warn=log)
    from edgeseg.engine.checkpoint import file_sha256

    val = None
    if data:
        from edgeseg.data.coco import CocoDataset

        val = CocoDataset(data)
    float_ap = _float_ap(model, recipe, input_hw, spec.dynamic, val) if val else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    exclude: list[str] = []
    while True:
        with tempfile.TemporaryDirectory(prefix=".edgeseg-export-", dir=out.parent) as tmp:
            folder = Path(tmp) / "bundle"
            folder.mkdir()
            job = ExportJob(model, recipe, class_names, input_hw, spec.dynamic, precision, spec.opset, spec.layout,
                            folder, calib_set, log, exclude)
            try:
                meta = module.export(job)
            except EdgesegError:
                raise
            except Exception as e:  # a converter crash is a failed export, said in one line
                first = (str(e).strip().splitlines() or [""])[0][:300]
                raise EdgesegError(f"{spec.format} export failed: {type(e).__name__}: {first}; no bundle written") from None
            meta.update(_common_meta(recipe, class_names, input_hw, spec, precision, checkpoint, file_sha256(checkpoint)))
            meta["target"] = {"name": target, "format": spec.format, "runtime": spec.runtime}
            if calib_set:
                meta["calibration"] = {**calib_set.summary(), **meta.get("calibration", {})}
            from edgeseg.runtime.bundle import write_bundle_meta

            write_bundle_meta(folder, meta)
            accuracy = _bundle_accuracy(folder, val, float_ap) if val else None
            if accuracy:
                meta["accuracy"] = accuracy
                write_bundle_meta(folder, meta)
                drop = accuracy["drop"]
                log(f"mask AP: float {accuracy['float_mask_ap']:.2f}, exported {accuracy['export_mask_ap']:.2f} (drop {drop:.2f})")
                if max_drop is not None and drop > max_drop:
                    more = module.fallback_candidates(job, exclude) if precision == "int8" else None
                    if not more:
                        raise EdgesegError(f"export drops mask AP by {drop:.2f} points (> --max-drop {max_drop}); "
                                           "no float fallback left; no bundle written")
                    log(f"drop {drop:.2f} > {max_drop}: keeping {len(more)} more layers in float")
                    exclude = exclude + more
                    continue
            with atomic_path(out) as final:
                folder.rename(final)
            return out


def _common_meta(recipe, class_names, input_hw, spec, precision, checkpoint, digest) -> dict:
    from dataclasses import asdict

    import torch

    from edgeseg.preprocess import PIXEL_MEAN, PIXEL_STD

    inf = recipe.model.inference
    return {
        "model": {"name": recipe.model.name, "config": asdict(recipe.model)},
        "class_names": list(class_names),
        "input": {"name": "images", "height": input_hw[0], "width": input_hw[1], "layout": spec.layout,
                  "dtype": "float32", "dynamic": spec.dynamic, "min_size": recipe.data.min_size_test,
                  "max_size": recipe.data.max_size_test, "size_divisor": 32},
        "preprocess": {"color": "RGB", "mean": PIXEL_MEAN.tolist(), "std": PIXEL_STD.tolist(),
                       "resize": "shortest edge (dynamic) or fit into the input (static); pad bottom/right"},
        "outputs": {"scores": "[1, N, C] sqrt(sigmoid(class) * sigmoid(objectness))",
                    "masks": "[1, N, H/4, W/4] mask logits at stride 4 of the input"},
        "postprocess": {"cls_threshold": inf.cls_threshold, "mask_threshold": inf.mask_threshold,
                        "max_detections": inf.max_detections},
        "precision": precision,
        "source": {"checkpoint": str(checkpoint), "sha256": digest},
        "versions": {"edgeseg": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def _float_ap(model, recipe, input_hw, dynamic, val) -> float:
    """Mask AP of the PyTorch model through exactly the preprocessing the bundle will use."""
    import torch

    from edgeseg.evaluation.dataset_eval import evaluate_dataset
    from edgeseg.postprocess import postprocess
    from edgeseg.preprocess import preprocess

    inf = recipe.model.inference

    def predict(image, name="image"):
        if dynamic:
            x, meta = preprocess(image, recipe.data.min_size_test, recipe.data.max_size_test, name=name)
        else:
            x, meta = preprocess(image, input_hw=input_hw, name=name)
        with torch.no_grad():
            scores, masks = model(torch.from_numpy(x))
        return postprocess(scores[0].numpy(), masks[0].numpy(), meta, inf.cls_threshold, inf.mask_threshold,
                           inf.max_detections)

    return evaluate_dataset(predict, val)["metrics"]["AP"] * 100


def _bundle_accuracy(folder: Path, val, float_ap: float) -> dict:
    from edgeseg.evaluation.dataset_eval import evaluate_dataset
    from edgeseg.runtime import Predictor

    predictor = Predictor(folder, backend="onnxruntime" if _backend_of(folder) == "tensorrt" else None)
    ap = evaluate_dataset(predictor, val)["metrics"]["AP"] * 100
    return {"data": str(val.json_path), "images": len(val), "float_mask_ap": round(float_ap, 3),
            "export_mask_ap": round(ap, 3), "drop": round(float_ap - ap, 3)}


def _backend_of(folder: Path) -> str:
    from edgeseg.runtime.bundle import read_bundle

    return read_bundle(folder, verify=False).backend
