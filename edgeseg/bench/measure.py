"""``edgeseg bench``: latency of preprocessing, inference and postprocessing per bundle, measured
interleaved (every frame goes through every bundle, in a rotating order) so that machine noise
hits all bundles alike and their ratios hold on a busy machine. Torch-free unless a PyTorch
checkpoint is one of the models."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeseg.bench.memory import peak_memory_mib
from edgeseg.bench.system import load_average, system_info
from edgeseg.demo.sources import SyntheticSource, parse_frame_size
from edgeseg.errors import EdgesegError


@dataclass
class Entry:
    path: Path
    predictor: object
    format: str
    precision: str
    size_mib: float
    memory_mib: float | None = None  # peak RSS of a process that loads and runs only this model
    ap: float | None = None  # the primary metric of the model's output kind
    metric: str | None = None  # its name, e.g. "mask AP"
    boundary_ap: float | None = None  # with --boundary, for a kind with masks
    input_shape: list | None = None  # the network input of the first timed frame
    score: float | None = None  # the deploy threshold its postprocess ran at
    seconds: dict = field(default_factory=lambda: {"pre": [], "infer": [], "post": []})


def describe(path: Path, predictor) -> tuple[str, str, float]:
    """(format, precision, size on disk in MiB) of a bundle or a checkpoint."""
    bundle = getattr(predictor, "bundle", None)
    if bundle is None:
        return "pytorch", "fp32", path.stat().st_size / 2**20
    size = sum(a["bytes"] for a in bundle.meta["artifacts"].values())
    return bundle.meta.get("target", {}).get("format", bundle.backend), bundle.meta["precision"], size / 2**20


def load_frames(data: str | None, count: int, frame_hw: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Up to ``count`` distinct frames as a camera would deliver them: the val images with --data
    (at their own sizes, or resized to ``frame_hw``), else synthetic frames of ``frame_hw``
    (default ``CAMERA_HW``), so that pre- and postprocessing are timed at the size users see."""
    if data:
        import cv2

        from edgeseg.data.coco import CocoDataset
        from edgeseg.data.images import read_image_rgb

        dataset = CocoDataset(data)
        images = [read_image_rgb(r["file_name"]) for r in dataset.records[:count]]
        if frame_hw:
            images = [cv2.resize(im, frame_hw[::-1], interpolation=cv2.INTER_LINEAR) for im in images]
        return images
    source = SyntheticSource(frames=count, hw=frame_hw or CAMERA_HW)
    return [source.frame(i) for i in range(count)]


def frame_sizes(images: list[np.ndarray]) -> list[str]:
    return sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})


CAMERA_HW = (720, 1280)  # a typical camera frame: what bench times pre/postprocessing at by default


def percentiles(values: list[float]) -> dict:
    ms = np.asarray(values) * 1000
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99))}


def run_bench(models, data: str | None = None, frames: int = 100, warmup: int = 10, threads: int | None = None,
              device: str | None = None, progress: bool = True, log=print, frame_size: str | None = None,
              score: float | None = None, class_agnostic: bool = False, boundary: bool = False) -> dict:
    """Time every model on the same frames; ``frame_size`` ('WxH') sets the frames' size, ``score``
    the deploy threshold (default: each model's own). AP with ``data`` keeps evaluation's threshold;
    ``class_agnostic`` scores it whatever the classes (an annotation-free model's "object");
    ``boundary`` adds boundary AP for models with masks."""
    from edgeseg.predictor import load_predictor

    if not models:
        raise EdgesegError("bench needs at least one bundle or checkpoint")
    if threads is not None and threads < 1:
        raise EdgesegError(f"--threads must be at least 1, got {threads}")
    if frames < 1 or warmup < 0:
        raise EdgesegError("--frames must be at least 1 and --warmup at least 0")
    if boundary and not data:
        raise EdgesegError("--boundary needs --data: boundary AP is measured on a val set")
    system = system_info(threads)
    images = load_frames(data, min(frames, 200), parse_frame_size(frame_size))
    system["frame_sizes"] = frame_sizes(images)
    entries = []
    for path in map(Path, models):
        predictor = load_predictor(path, device, threads, score)
        x, _ = predictor.prepare(images[0])
        for _ in range(max(warmup, 1)):
            predictor.raw(x)
        entries.append(Entry(path, predictor, *describe(path, predictor), score=predictor.score))
    for entry in entries:
        entry.memory_mib = peak_memory_mib(str(entry.path), threads, device)
    if data:
        _accuracy(entries, data, log, class_agnostic, boundary)
    _time_interleaved(entries, images, frames, progress)
    system["load_average_after"] = load_average()
    return _results(entries, system, data, frames, warmup)


def _accuracy(entries, data, log, class_agnostic: bool = False, boundary: bool = False) -> None:
    from edgeseg.data.coco import CocoDataset
    from edgeseg.evaluation.dataset_eval import evaluate_dataset

    dataset = CocoDataset(data)
    for entry in entries:
        if not class_agnostic and entry.predictor.class_names != dataset.class_names:
            raise EdgesegError(f"{entry.path}: classes differ from {dataset.json_path} (--class-agnostic scores "
                               "masks whatever their class)")
        report = evaluate_dataset(entry.predictor, dataset, class_agnostic=class_agnostic, boundary=boundary)
        entry.ap, entry.metric = report["metrics"]["AP"] * 100, report["metric"]
        also = ""
        if "boundary" in report["by_type"]:
            entry.boundary_ap = report["by_type"]["boundary"]["metrics"]["AP"] * 100
            also = f", boundary AP {entry.boundary_ap:.2f}"
        log(f"{entry.path.name}: {entry.metric} {entry.ap:.2f}{also} on {len(dataset)} images")


def _time_interleaved(entries, images, frames, progress) -> None:
    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"timing {len(entries)} model(s)", total=frames)
        for i in range(frames):
            image = images[i % len(images)]
            shift = i % len(entries)  # rotate who goes first so cache/turbo effects even out
            for entry in entries[shift:] + entries[:shift]:
                p, times = entry.predictor, entry.seconds
                t0 = time.perf_counter()
                x, meta = p.prepare(image)
                t1 = time.perf_counter()
                entry.input_shape = entry.input_shape or list(x.shape)
                outputs = p.raw(x)
                t2 = time.perf_counter()
                p.finish(outputs, meta)
                t3 = time.perf_counter()
                times["pre"].append(t1 - t0)
                times["infer"].append(t2 - t1)
                times["post"].append(t3 - t2)
            bar.advance(task)


def _results(entries, system, data, frames, warmup) -> dict:
    rows = []
    for entry in entries:
        s = entry.seconds
        total = [a + b + c for a, b, c in zip(s["pre"], s["infer"], s["post"])]
        latency = {k: percentiles(v) for k, v in {**s, "total": total}.items()}
        rows.append({
            "model": str(entry.path), "name": entry.path.name, "format": entry.format, "precision": entry.precision,
            "size_mib": round(entry.size_mib, 2), "peak_memory_mib": entry.memory_mib,
            "ap": None if entry.ap is None else round(entry.ap, 2), "metric": entry.metric,
            "boundary_ap": None if entry.boundary_ap is None else round(entry.boundary_ap, 2),
            "latency_ms": latency,
            "fps_model_only": 1000 / latency["infer"]["median"], "fps_end_to_end": 1000 / latency["total"]["median"],
            "input_shape": entry.input_shape, "score_threshold": entry.score,
        })
    first = rows[0]
    for row in rows:
        row["speedup_model_only"] = row["fps_model_only"] / first["fps_model_only"]
        row["speedup_end_to_end"] = row["fps_end_to_end"] / first["fps_end_to_end"]
    return {"system": system, "data": data, "frames": frames, "warmup": warmup, "results": rows}
