"""``edgeseg export``: checkpoint -> bundle for a target device.

A target is a device-level name (``onnx``, ``openvino``, ``jetson``, ...) that picks a format
and its defaults. Each format module has the same small interface: ``is_available()``,
``export(job) -> dict`` (writes artefacts into ``job.folder``, returns metadata) and
``fallback_candidates(job, already)`` (layers an accuracy-gated INT8 export keeps float next).
This module owns what they share: the model graph (any method's DeployModel, outputs named by
its output kind), calibration, the output check, the accuracy gate and the atomic bundle write.
"""

from __future__ import annotations

import importlib
import math
import platform
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeseg import __version__
from edgeseg.errors import EdgesegError
from edgeseg.io import atomic_path, check_output_folder, file_sha256, prepare_parent
from edgeseg.models.registry import get_method
from edgeseg.runtime.bundle import is_bundle


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
FP32_TOLERANCE = 1e-3  # max |difference| of scores and mask probabilities


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
    int8: object = None  # the method's Int8Policy


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
    from edgeseg.models.deploy import DeployModel

    model, recipe, class_names = load_model(checkpoint)
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
    if max_drop is not None and not (max_drop >= 0 and math.isfinite(max_drop)):
        raise EdgesegError(f"--max-drop {max_drop}: must be a non-negative number of AP points")
    if max_drop is not None and not data:
        raise EdgesegError("--max-drop needs --data: the AP drop is measured on that validation set")
    out = Path(out)
    check_output_folder(out, is_bundle, "bundle")  # before minutes of work, not after
    prepare_parent(out)  # the work folder is created beside the bundle
    model, recipe, class_names = _deploy_model(checkpoint)
    input_hw = parse_imgsz(imgsz or spec.imgsz, recipe.data.min_size_test // 32 * 32 or 640)
    sizes = run_sizes(recipe, input_hw, explicit=bool(imgsz or spec.imgsz))
    calib_set = None
    if precision == "int8":
        calib_set = _calibration_set(calib or spec.calib, recipe, log)
    val, agnostic = None, False
    if data:
        from edgeseg.data.coco import CocoDataset

        val = CocoDataset(data)
        agnostic = val.class_names != list(class_names)  # e.g. an annotation-free model's one class, "object"
        if agnostic:
            log(f"{val.json_path}: its classes are not the model's; the AP drop is measured class-agnostic")
    float_ap = _float_ap(model, recipe, input_hw, spec.dynamic, val, sizes, agnostic) if val else None
    exclude: list[str] = []
    while True:
        with tempfile.TemporaryDirectory(prefix=".edgeseg-export-", dir=out.parent) as tmp:
            folder = Path(tmp) / "bundle"
            folder.mkdir()
            job = ExportJob(model, recipe, class_names, input_hw, spec.dynamic, precision, spec.opset, spec.layout,
                            folder, calib_set, log, exclude, get_method(recipe.model.name).int8)
            try:
                meta = module.export(job)
            except EdgesegError:
                raise
            except Exception as e:  # a converter crash is a failed export, said in one line
                first = (str(e).strip().splitlines() or [""])[0][:300]
                raise EdgesegError(f"{spec.format} export failed: {type(e).__name__}: {first}; no bundle written") from None
            meta.update(_common_meta(recipe, class_names, input_hw, spec, precision, checkpoint, file_sha256(checkpoint), sizes))
            meta["target"] = {"name": target, "format": spec.format, "runtime": spec.runtime}
            if calib_set:
                meta["calibration"] = {**calib_set.summary(), **meta.get("calibration", {})}
            from edgeseg.runtime.bundle import write_bundle_meta

            write_bundle_meta(folder, meta)
            checked = _check_outputs(folder, model, input_hw, spec.layout, precision)
            meta["outputs"]["artifact_names"], meta["check"] = checked["artifact_names"], checked["check"]
            write_bundle_meta(folder, meta)
            accuracy = _bundle_accuracy(folder, val, float_ap, agnostic) if val else None
            if accuracy:
                meta["accuracy"] = accuracy
                write_bundle_meta(folder, meta)
                drop = accuracy["drop"]
                log(f"{accuracy['metric']}: float {accuracy['float']:.2f}, exported {accuracy['exported']:.2f} (drop {drop:.2f})")
                if max_drop is not None and drop > max_drop:
                    more = module.fallback_candidates(job, exclude) if precision == "int8" else None
                    if not more:
                        raise EdgesegError(f"export drops {accuracy['metric']} by {drop:.2f} points (> --max-drop {max_drop}); "
                                           "no float fallback left; no bundle written")
                    log(f"drop {drop:.2f} > {max_drop}: keeping {len(more)} more layers in float")
                    exclude = exclude + more
                    continue
            with atomic_path(out, is_bundle, "bundle") as final:
                folder.rename(final)
            return out


def _calibration_set(calib: str, recipe, log):
    """The named calibration set, or else the first images of the recipe's training set where it is."""
    from edgeseg.export.calibration import DEFAULT_IMAGES, resolve_calibration

    if not calib:
        train = Path(recipe.data.train)
        if not recipe.data.train or not train.exists():
            raise EdgesegError(f"INT8 needs calibration images: pass --calib (a COCO dataset, an image folder or a "
                               f"manifest in calibration/); the recipe's training set {train.absolute()} is not here")
        calib = f"{train}:{DEFAULT_IMAGES}"
        log(f"calibrating on the first {DEFAULT_IMAGES} images of {train} at most (--calib to choose)")
    return resolve_calibration(calib, warn=log)


def _check_outputs(folder: Path, model, input_hw, layout: str, precision: str) -> dict:
    """Run the written bundle once beside PyTorch and name its outputs.

    Each PyTorch output is matched to the artefact output of the same shape that agrees best
    (converters may rename or reorder outputs; TFLite does), and the mapping is recorded so every
    backend returns outputs by name. Non-finite outputs refuse the export, and an FP32 bundle must
    agree with PyTorch: an exporter that silently changes numbers is caught here, not on a device.
    """
    import numpy as np
    import torch

    from edgeseg.runtime.bundle import read_bundle
    from edgeseg.runtime.predictor import open_session

    h, w = input_hw
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    with torch.no_grad():
        want = dict(zip(model.output_names, (t.numpy() for t in model(torch.from_numpy(x)))))
    bundle = read_bundle(folder)
    session = open_session(bundle, backend="onnxruntime" if bundle.backend == "tensorrt" else None)
    got = {k: np.asarray(v, np.float32) for k, v in session.run(x.transpose(0, 2, 3, 1) if layout == "NHWC" else x).items()}
    if not all(np.isfinite(v).all() for v in got.values()):
        raise EdgesegError("the exported model outputs NaN or Inf on a test input; no bundle written")
    renames, diff = {}, {}
    for name, ref in want.items():
        candidates = [k for k, v in got.items() if v.shape == ref.shape and k not in renames]
        if not candidates:
            raise EdgesegError(f"the exported model has no output shaped like '{name}' {list(ref.shape)}; no bundle written")
        rel = {k: float((np.abs(got[k] - ref) / (1 + np.abs(ref))).max()) for k in candidates}
        best = min(candidates, key=rel.get)
        renames[best], diff[name] = name, rel[best]
    if precision == "fp32" and max(diff.values()) > FP32_TOLERANCE:
        raise EdgesegError(f"the FP32 export differs from PyTorch by {max(diff.values()):.2e} (> {FP32_TOLERANCE}, "
                           "relative) on a test input; no bundle written")
    check = {"input": f"standard normal {h}x{w}, seed 0", "max_rel_diff_vs_pytorch": diff}
    return {"artifact_names": renames, "check": check}


def run_sizes(recipe, input_hw: tuple[int, int], explicit: bool) -> tuple[int, int]:
    """(shortest edge, longest edge at most) a dynamic bundle resizes frames to: the recipe's test
    size, or the size given at export (``--imgsz`` or the target's), which is also the size it was
    traced and calibrated at, with the recipe's longest-edge cap scaled alike."""
    data = recipe.data
    if not explicit:
        return data.min_size_test, data.max_size_test
    short = min(input_hw)
    return short, max(short, round(data.max_size_test * short / data.min_size_test))


def _common_meta(recipe, class_names, input_hw, spec, precision, checkpoint, digest, sizes) -> dict:
    import torch

    from edgeseg.config import recipe_to_dict
    from edgeseg.models.registry import output_kind_of, supervision_of
    from edgeseg.postprocess import output_kind
    from edgeseg.preprocess import PIXEL_MEAN, PIXEL_STD

    inf = recipe.model.inference
    kind = output_kind_of(recipe.model)
    return {
        "model": {"name": recipe.model.name, "config": recipe_to_dict(recipe)["model"], "supervision": list(supervision_of(recipe.model))},
        "class_names": list(class_names),
        "input": {"name": "images", "height": input_hw[0], "width": input_hw[1], "layout": spec.layout,
                  "dtype": "float32", "dynamic": spec.dynamic, "min_size": sizes[0], "max_size": sizes[1],
                  "size_divisor": 32},
        "preprocess": {"color": "RGB", "mean": PIXEL_MEAN.tolist(), "std": PIXEL_STD.tolist(),
                       "resize": "shortest edge (dynamic) or fit into the input (static); pad bottom/right"},
        "outputs": {"kind": kind, "names": list(output_kind(kind).outputs)},
        "postprocess": {"cls_threshold": inf.cls_threshold, "mask_threshold": inf.mask_threshold,
                        "max_detections": inf.max_detections, "score_threshold": inf.score_threshold},
        "precision": precision,
        "source": {"checkpoint": str(checkpoint), "sha256": digest},
        "versions": {"edgeseg": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def _float_ap(model, recipe, input_hw, dynamic, val, sizes, class_agnostic: bool = False) -> float:
    """The primary metric of the PyTorch model through exactly the preprocessing the bundle uses."""
    import torch

    from edgeseg.evaluation.dataset_eval import evaluate_dataset
    from edgeseg.models.registry import output_kind_of
    from edgeseg.postprocess import postprocess
    from edgeseg.preprocess import preprocess

    kind, thresholds = output_kind_of(recipe.model), vars(recipe.model.inference)

    def predict(image, name="image", score=None):
        if dynamic:
            x, meta = preprocess(image, *sizes, name=name)
        else:
            x, meta = preprocess(image, input_hw=input_hw, name=name)
        with torch.no_grad():
            outputs = {n: t[0].numpy() for n, t in zip(model.output_names, model(torch.from_numpy(x)))}
        return postprocess(kind, outputs, meta, thresholds, score)

    return evaluate_dataset(predict, val, kind, class_agnostic=class_agnostic)["metrics"]["AP"] * 100


def _bundle_accuracy(folder: Path, val, float_ap: float, class_agnostic: bool = False) -> dict:
    from edgeseg.evaluation.dataset_eval import evaluate_dataset
    from edgeseg.runtime import Predictor

    predictor = Predictor(folder, backend="onnxruntime" if _backend_of(folder) == "tensorrt" else None)
    report = evaluate_dataset(predictor, val, predictor.kind.name, class_agnostic=class_agnostic)
    ap = report["metrics"]["AP"] * 100
    return {"metric": report["metric"], "data": str(val.json_path), "images": len(val), "float": round(float_ap, 3),
            "exported": round(ap, 3), "drop": round(float_ap - ap, 3)}


def _backend_of(folder: Path) -> str:
    from edgeseg.runtime.bundle import read_bundle

    return read_bundle(folder, verify=False).backend
