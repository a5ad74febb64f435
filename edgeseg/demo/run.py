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
    """Annotated video written to a hidden temporary file, renamed into place when complete.
    Frames of another size than the first are letterboxed to it (a video has one size)."""

    def __init__(self, path: Path, fps: float = 30.0):
        from edgeseg.io import check_output

        self.path = check_output(path, "video")
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise fail(self.path, f"unknown video suffix; use one of {', '.join(VIDEO_CODECS)}")
        if not self.path.parent.is_dir():
            raise fail(self.path.parent, "output folder does not exist")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps, self.writer, self.size, self.letterboxed = fps, None, None, 0

    def write(self, frame_rgb: np.ndarray) -> None:
        if self.writer is None:
            self.size = frame_rgb.shape[1], frame_rgb.shape[0]
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise fail(self.path, "OpenCV cannot write this video format here")
        if frame_rgb.shape[1::-1] != self.size:  # OpenCV would drop it without a word
            frame_rgb = letterbox(frame_rgb, *self.size)
            self.letterboxed += 1
        self.writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def close(self, keep: bool) -> None:
        if self.writer is not None:
            self.writer.release()
            if keep:
                os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


def letterbox(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    """``frame`` scaled to fit ``w`` x ``h``, centred on black."""
    scale = min(w / frame.shape[1], h / frame.shape[0])
    nw, nh = max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def draw_hud(frame: np.ndarray, fps: float, dropped: int) -> None:
    cv2.rectangle(frame, (0, 0), (frame.shape[1] - 1, HUD_HEIGHT - 1), (0, 0, 0), cv2.FILLED)
    text = f"{fps:5.1f} FPS  dropped {dropped}"
    cv2.putText(frame, text, (4, HUD_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


class Renderer:
    """Postprocessing + overlay + HUD + video + window on its own thread; ``q`` in the window stops."""

    def __init__(self, predictor, sink: VideoSink | None, show: bool, stop: threading.Event):
        self.predictor, self.sink, self.show, self.stop = predictor, sink, show, stop
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
            frame, outputs, meta, fps, dropped = item
            try:
                t0 = time.perf_counter()
                detections = self.predictor.finish(outputs, meta)
                self.post_seconds.append(time.perf_counter() - t0)
                out = draw_detections(frame, detections, self.predictor.class_names)
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
             device: str | None = None, score: float | None = None, max_frames: int | None = None, log=print) -> dict:
    from edgeseg.predictor import load_predictor

    if threads is not None and threads < 1:
        raise EdgesegError(f"--threads must be at least 1, got {threads}")
    src = parse_source(source)
    # the deploy threshold (``score``, else the model's) drops detections before any full-frame work
    predictor = load_predictor(model, device, threads or _default_threads(model), score)
    if show is None:
        show = display_available()
    elif show and not display_available():
        log("no display (or an OpenCV build without GUI): running headless")
        show = False
    sink = VideoSink(Path(save)) if save else None
    grabber = FrameGrabber(src, prepare=predictor.prepare, log=log).start()
    if sink:
        sink.fps = src.fps or sink.fps  # known once the source is open
    stop = threading.Event()
    previous = _on_sigint(stop)
    renderer = Renderer(predictor, sink, show, stop)
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
            outputs = predictor.raw(x)
            times["infer"].append(time.perf_counter() - t0)
            times["pre"].append(pre_seconds)
            frames += 1
            fps = frames / max(time.perf_counter() - started, 1e-9)
            renderer.put((frame, outputs, meta, fps, grabber.stats.dropped))
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
    if sink and sink.letterboxed:
        w, h = sink.size
        log(f"{save}: {sink.letterboxed} frame(s) of another size letterboxed to {w}x{h} (a video has one frame size)")
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
