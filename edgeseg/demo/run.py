"""``edgeseg demo``: three stages on three threads, each frame passing through all of them:
capture + preprocessing -> inference (main thread) -> postprocessing + overlay + video + window.

Preprocessing, postprocessing and encoding overlap the next inference, so the end-to-end rate
stays close to the model's own. Headless unless a display and an OpenCV GUI build exist; never a crash over it.
"""

from __future__ import annotations

import os
import queue
import signal
import statistics
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgeseg.demo.capture import FrameGrabber
from edgeseg.demo.sources import parse_source
from edgeseg.errors import EdgesegError, fail
from edgeseg.vis import draw_detections

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}  # .mkv is lossless
HUD_HEIGHT = 18  # the top band with FPS; everything below it is the same overlay as `edgeseg predict`
WINDOW = "edgeseg"


def display_available() -> bool:
    gui = next((line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")), "")
    has_gui = gui and "NONE" not in gui
    return bool(has_gui and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")))


class VideoSink:
    """Annotated video written to a hidden temporary file, renamed into place when complete."""

    def __init__(self, path: Path, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise fail(self.path, f"unknown video suffix; use one of {', '.join(VIDEO_CODECS)}")
        if not self.path.parent.is_dir():
            raise fail(self.path.parent, "output folder does not exist")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps, self.writer = fps, None

    def write(self, frame_rgb: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame_rgb.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise fail(self.path, "OpenCV cannot write this video format here")
        self.writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def close(self, keep: bool) -> None:
        if self.writer is not None:
            self.writer.release()
            if keep:
                os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


def draw_hud(frame: np.ndarray, fps: float, dropped: int) -> None:
    cv2.rectangle(frame, (0, 0), (frame.shape[1] - 1, HUD_HEIGHT - 1), (0, 0, 0), cv2.FILLED)
    text = f"{fps:5.1f} FPS  dropped {dropped}"
    cv2.putText(frame, text, (4, HUD_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


class Renderer:
    """Postprocessing + overlay + HUD + video + window on its own thread; ``q`` in the window stops."""

    def __init__(self, predictor, score: float, sink: VideoSink | None, show: bool, stop: threading.Event):
        self.predictor, self.score, self.sink, self.show, self.stop = predictor, score, sink, show, stop
        self.post_seconds: list[float] = []
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="edgeseg-render", daemon=True)
        self.thread.start()

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.show:
            cv2.destroyAllWindows()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue
            frame, scores, masks, meta, fps, dropped = item
            try:
                t0 = time.perf_counter()
                detections = self.predictor.finish(scores, masks, meta)
                self.post_seconds.append(time.perf_counter() - t0)
                out = draw_detections(frame, detections, self.predictor.class_names, self.score)
                draw_hud(out, fps, dropped)
                if self.sink:
                    self.sink.write(out)
                if self.show:
                    cv2.imshow(WINDOW, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        self.stop.set()
            except Exception as e:  # surfaced on the main thread at the next frame
                self.error = e


def run_demo(model, source: str, show: bool | None = None, save: str | None = None, threads: int | None = None,
             device: str | None = None, score: float = 0.3, max_frames: int | None = None, log=print) -> dict:
    from edgeseg.workflows import load_predictor

    if threads is not None and threads < 1:
        raise EdgesegError(f"--threads must be at least 1, got {threads}")
    src = parse_source(source)
    predictor = load_predictor(model, device, threads or _default_threads(model))
    if show is None:
        show = display_available()
    elif show and not display_available():
        log("no display (or an OpenCV build without GUI): running headless")
        show = False
    grabber = FrameGrabber(src, prepare=predictor.prepare, log=log).start()
    sink = VideoSink(Path(save), src.fps or 30.0) if save else None
    stop = threading.Event()
    previous = _on_sigint(stop)
    renderer = Renderer(predictor, score, sink, show, stop)
    times = {"pre": [], "infer": []}
    frames, started, ended, ok = 0, None, None, False
    try:
        pending = grabber.get()
        if pending is not None:  # warm up on the first frame, outside the clock
            for _ in range(3):
                predictor.raw(pending[2][0])
        started = time.perf_counter()
        while not stop.is_set() and (max_frames is None or frames < max_frames):
            item, pending = pending or grabber.get(timeout=0.5), None
            if item is None:
                if grabber.finished:
                    break
                continue
            _, frame, (x, meta), pre_seconds = item
            t0 = time.perf_counter()
            scores, masks = predictor.raw(x)
            times["infer"].append(time.perf_counter() - t0)
            times["pre"].append(pre_seconds)
            frames += 1
            fps = frames / max(time.perf_counter() - started, 1e-9)
            renderer.put((frame, scores, masks, meta, fps, grabber.stats.dropped))
        ok = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        grabber.stop()
        try:
            renderer.close()  # the last frames are drawn and written before the clock stops
            ended = time.perf_counter()
        finally:
            if sink:
                sink.close(keep=ok and frames > 0)
    times["post"] = renderer.post_seconds
    elapsed = ended - started if started and ended else 0.0
    return _summary(src, grabber.stats, frames, elapsed, times, save if sink and frames else None, show)


def _default_threads(model) -> int | None:
    """Leave one core to capture and rendering, unless the bundle's device profile says otherwise:
    on a small CPU, inference on every core starves the other two stages of the pipeline."""
    from edgeseg.runtime.bundle import read_bundle

    if Path(model).is_dir() and read_bundle(model, verify=False).meta.get("target", {}).get("runtime", {}).get("threads"):
        return None
    return max(1, (os.cpu_count() or 2) - 1)


def _on_sigint(stop: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, lambda *_: stop.set())


def _summary(src, stats, frames, elapsed, times, video, show) -> dict:
    def median_ms(values):
        return round(statistics.median(values) * 1000, 3) if values else None

    infer = median_ms(times["infer"])
    return {
        "source": src.name, "frames": frames, "captured": stats.captured, "dropped": stats.dropped,
        "unreadable": stats.unreadable, "reconnects": stats.reconnects, "seconds": round(elapsed, 3),
        "fps_end_to_end": round(frames / elapsed, 2) if elapsed else None,
        "fps_model_only": round(1000 / infer, 2) if infer else None,
        "median_ms": {k: median_ms(v) for k, v in times.items()},
        "video": str(video) if video else None, "window": show, "error": stats.error or None,
    }
