"""Predictor: bundle -> backend session -> shared preprocessing and postprocessing."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.postprocess import Detections, postprocess
from edgeseg.preprocess import SIZE_DIVISOR, preprocess
from edgeseg.runtime.bundle import Bundle, read_bundle

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
    """``Predictor(bundle)(image_rgb) -> Detections``; ``raw`` runs the network alone."""

    def __init__(self, bundle: str | Path | Bundle, device: str | None = None, threads: int | None = None,
                 backend: str | None = None):
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

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network input (batch of one) -> (scores [N, C], mask logits [N, H/4, W/4])."""
        self.check_input(x)
        scores, masks = self.session.run(np.ascontiguousarray(x, dtype=np.float32))
        return np.asarray(scores)[0], np.asarray(masks)[0]

    def prepare(self, image: np.ndarray, name: str = "image"):
        inp = self.bundle.input
        if self.bundle.dynamic:
            return preprocess(image, inp["min_size"], inp["max_size"], layout=self.layout, name=name)
        return preprocess(image, input_hw=self.bundle.input_hw, layout=self.layout, name=name)

    def finish(self, scores: np.ndarray, masks: np.ndarray, meta) -> Detections:
        post = self.bundle.meta["postprocess"]
        return postprocess(scores, masks, meta, post["cls_threshold"], post["mask_threshold"], post["max_detections"])

    def __call__(self, image: np.ndarray, name: str = "image") -> Detections:
        x, meta = self.prepare(image, name)
        return self.finish(*self.raw(x), meta)
