"""Predictor: bundle -> backend session -> shared preprocessing and postprocessing."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError, fail
from edgeseg.postprocess import DEPLOY_SCORE, Detections, check_score, output_kind, postprocess
from edgeseg.preprocess import SIZE_DIVISOR, preprocess
from edgeseg.runtime.bundle import BUNDLE_FILE, Bundle, read_bundle

# backend name in bundle.json -> module under edgeseg.runtime.backends (imported on use)
BACKENDS = {
    "onnxruntime": "onnxruntime_backend",
    "openvino": "openvino_backend",
    "litert": "litert_backend",
    "tensorrt": "tensorrt_backend",
}


def open_session(bundle: Bundle, device: str | None = None, threads: int | None = None, backend: str | None = None):
    backend = backend or bundle.backend
    if backend not in BACKENDS:
        raise EdgesegError(f"{bundle.path}: unknown backend '{backend}'; this edgeseg runs {', '.join(BACKENDS)}")
    if backend != bundle.backend and not (bundle.backend == "tensorrt" and backend == "onnxruntime"):
        raise EdgesegError(f"{bundle.path}: a {bundle.backend} bundle cannot run on {backend}")
    module = importlib.import_module(f"edgeseg.runtime.backends.{BACKENDS[backend]}")
    return module.Session(bundle, device=device, threads=threads)


class Predictor:
    """``Predictor(bundle)(image_rgb) -> Detections``; ``raw`` runs the network alone.

    ``score`` is the deploy threshold (default: the bundle's ``postprocess.score_threshold``);
    pass ``score=0`` to a call for every detection, as evaluation does."""

    def __init__(self, bundle: str | Path | Bundle, device: str | None = None, threads: int | None = None,
                 backend: str | None = None, score: float | None = None):
        if threads is not None and threads < 1:
            raise EdgesegError(f"threads must be at least 1, got {threads}")
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        if backend in (None, self.bundle.backend):  # the device profile's defaults, e.g. 4 threads on a Pi
            defaults = self.bundle.meta.get("target", {}).get("runtime", {})
            device = device or defaults.get("device")
            threads = threads or defaults.get("threads")
        self.class_names = self.bundle.class_names
        self.session = open_session(self.bundle, device, threads, backend)
        self.layout = self.bundle.input.get("layout", "NCHW")
        self.kind = output_kind(self.bundle.outputs["kind"])
        self.renames = self.bundle.outputs.get("artifact_names", {})
        self.score = check_score(self.bundle.meta["postprocess"].get("score_threshold", DEPLOY_SCORE) if score is None else score)

    def check_input(self, x: np.ndarray) -> None:
        if self.layout == "NHWC":
            h, w = x.shape[1:3]
        else:
            h, w = x.shape[2:4]
        if self.bundle.dynamic:
            if h % SIZE_DIVISOR or w % SIZE_DIVISOR:
                raise EdgesegError(f"{self.bundle.path}: input {h}x{w} is not a multiple of {SIZE_DIVISOR}")
        elif (h, w) != self.bundle.input_hw:
            eh, ew = self.bundle.input_hw
            raise EdgesegError(f"{self.bundle.path}: this bundle takes {eh}x{ew} inputs, got {h}x{w} "
                               "(re-export with --imgsz, or a dynamic-size target)")

    def raw(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Network input (batch of one) -> the output kind's arrays by name (batch item 0)."""
        self.check_input(x)
        got = self.session.run(np.ascontiguousarray(x, dtype=np.float32))
        outputs = {self.renames.get(name, name): np.asarray(value)[0] for name, value in got.items()}
        missing = [n for n in self.kind.outputs if n not in outputs]
        if missing:
            raise fail(self.bundle.path / BUNDLE_FILE, f"the model returns {', '.join(sorted(outputs))}, not the "
                                                       f"{', '.join(missing)} of a {self.kind.name} bundle; re-export it")
        scores = outputs["scores"]
        if scores.shape[-1] != len(self.class_names):
            raise fail(self.bundle.path / BUNDLE_FILE, f"lists {len(self.class_names)} class names but the model "
                                                       f"scores {scores.shape[-1]} classes")
        return outputs

    def prepare(self, image: np.ndarray, name: str = "image"):
        inp = self.bundle.input
        if self.bundle.dynamic:
            return preprocess(image, inp["min_size"], inp["max_size"], layout=self.layout, name=name)
        return preprocess(image, input_hw=self.bundle.input_hw, layout=self.layout, name=name)

    def finish(self, outputs: dict, meta, score: float | None = None) -> Detections:
        return postprocess(self.kind.name, outputs, meta, self.bundle.meta["postprocess"],
                           self.score if score is None else score)

    def __call__(self, image: np.ndarray, name: str = "image", score: float | None = None) -> Detections:
        x, meta = self.prepare(image, name)
        return self.finish(self.raw(x), meta, score)
