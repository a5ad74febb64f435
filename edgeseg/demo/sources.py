"""Frame sources behind one interface: cameras, streams, video files, image folders, synthetic.

``read()`` returns ``(status, frame)``: ``ok`` with an RGB uint8 frame, ``skip`` for a frame that
could not be decoded (the caller counts it and reads on), ``end`` at the end of a file, ``lost``
when a live source stops delivering (the caller may reopen it). Torch-free.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import EdgesegError, fail

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
SOURCE_FORMS = ("a camera index (0), /dev/videoN, a video file, an image folder, rtsp://... "
                "or synthetic[:FRAMES[:WxH]]")
MAX_BAD_FRAMES = 25  # consecutive undecodable frames before a file counts as ended
# OpenCV reads this once, when it first uses FFmpeg: without it a stream that cannot be reached
# prints FFmpeg's own error line beside ours. Set it to 24 (warnings) or more to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


@contextlib.contextmanager
def quiet_opencv():
    """OpenCV prints backend warnings to stderr while probing devices; our errors say it in one line."""
    logging = getattr(cv2, "utils", None) and getattr(cv2.utils, "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class CaptureSource:
    """A camera (index or /dev/videoN) or a network stream: live, may be lost and reopened."""

    live = True

    def __init__(self, spec: int | str):
        self.spec = spec
        self.name = f"camera {spec}" if isinstance(spec, int) else str(spec)
        self.capture = None
        self.fps = None

    def open(self) -> None:
        with quiet_opencv():
            capture = cv2.VideoCapture(self.spec)
        if not capture.isOpened():
            capture.release()
            if isinstance(self.spec, str) and self.spec.lower().startswith(STREAM_PREFIXES):
                raise EdgesegError(f"{self.name}: cannot open stream (unreachable, or not a stream)")
            raise EdgesegError(f"{self.name}: cannot be opened (no such camera, or it is in use)")
        self.capture = capture
        self.fps = capture.get(cv2.CAP_PROP_FPS) or None

    def read(self):
        ok, frame = self.capture.read() if self.capture is not None else (False, None)
        return ("ok", _to_rgb(frame)) if ok and frame is not None else ("lost", None)

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class VideoFileSource:
    """A video file: every frame in order; an undecodable frame is skipped, the end ends it."""

    live = False

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = str(path)
        self.capture = None
        self.fps = None
        self.bad_in_a_row = 0

    def open(self) -> None:
        with quiet_opencv():
            capture = cv2.VideoCapture(str(self.path))
        ok = capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
        if not ok:
            capture.release()
            raise fail(self.path, "not a readable video (OpenCV/FFmpeg cannot decode it)")
        self.capture = capture
        self.frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = capture.get(cv2.CAP_PROP_FPS) or None

    def read(self):
        ok, frame = self.capture.read()
        if ok and frame is not None:
            self.bad_in_a_row = 0
            return "ok", _to_rgb(frame)
        position = int(self.capture.get(cv2.CAP_PROP_POS_FRAMES))
        self.bad_in_a_row += 1
        if position < self.frames - 1 and self.bad_in_a_row < MAX_BAD_FRAMES:
            return "skip", None
        return "end", None

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class ImageFolderSource:
    """Images of a folder in name order (or a single image): a recorded camera, frame by frame."""

    live = False
    fps = None

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = str(path)
        self.files: list[Path] = []
        self.index = 0

    def open(self) -> None:
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            self.files = [self.path]
        if not self.files:
            raise fail(self.path, "no images in this folder")

    def read(self):
        if self.index >= len(self.files):
            return "end", None
        path = self.files[self.index]
        self.index += 1
        frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if frame is None or frame.dtype != np.uint8:
            return "skip", None
        return "ok", _to_rgb(frame)

    def close(self) -> None:
        pass


class SyntheticSource:
    """Deterministic frames of the embedded shapes scenes, panning, as a stand-in for a camera:
    ``size`` x ``size``, or ``hw`` (height, width) cut from the middle of a scene drawn at the
    longer side, e.g. (720, 1280) for a camera-sized frame."""

    live = False
    fps = 30.0

    def __init__(self, frames: int = 300, size: int = 256, seed: int = 0, scenes: int = 8, hold: int = 30,
                 hw: tuple[int, int] | None = None):
        if frames < 1:
            raise EdgesegError(f"synthetic:{frames}: the frame count must be at least 1")
        if hw is not None:
            check_frame_size(hw, f"synthetic frames of {hw[1]}x{hw[0]}")
        self.hw = tuple(hw) if hw else (size, size)
        self.frames, self.size, self.seed, self.scenes, self.hold = frames, max(self.hw), seed, scenes, hold
        self.name = f"synthetic:{frames}" + (f":{self.hw[1]}x{self.hw[0]}" if hw else "")
        self.index = 0
        self.cache: dict[int, np.ndarray] = {}

    def open(self) -> None:
        """Draws the scenes the frames will show up front: a camera delivers frames at no cost to
        the pipeline, and a scene drawn mid-run (tens of ms at 1280) would stall it."""
        self.index = 0
        for index in range(0, min(self.frames, self.scenes * self.hold), self.hold):
            self.frame(index)

    def frame(self, index: int) -> np.ndarray:
        from edgeseg.data.shapes import render_image

        scene = (index // self.hold) % self.scenes
        if scene not in self.cache:
            image = render_image(np.random.default_rng([self.seed, scene]), self.size)[0]
            (h, w), s = self.hw, self.size
            self.cache[scene] = np.ascontiguousarray(image[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w])
        shift = 2 * (index % self.hold)  # a slow pan within a scene
        return np.roll(self.cache[scene], shift, axis=1)

    def read(self):
        if self.index >= self.frames:
            return "end", None
        self.index += 1
        return "ok", self.frame(self.index - 1)

    def close(self) -> None:
        pass


FRAME_SIDES = (16, 8192)  # pixels, the smallest and largest side of a frame size given in WxH


def check_frame_size(hw: tuple[int, int], what: str) -> None:
    if not (FRAME_SIDES[0] <= min(hw) and max(hw) <= FRAME_SIDES[1]):
        raise EdgesegError(f"{what}: each side must be {FRAME_SIDES[0]} to {FRAME_SIDES[1]} pixels")


def parse_frame_size(text: str | None, option: str = "--frame-size") -> tuple[int, int] | None:
    """'1280x720' -> (720, 1280) as (height, width); None for None; one-line errors naming ``option``."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)[xX](\d+)", str(text).strip())
    if not match:
        raise EdgesegError(f"{option} {text}: expected WIDTHxHEIGHT, e.g. 1280x720")
    w, h = (int(v) for v in match.groups())
    check_frame_size((h, w), f"{option} {text}")
    return h, w


def parse_source(spec: str):
    """A source object for the ``--source`` string; a one-line error for anything else."""
    text = str(spec).strip()
    match = re.fullmatch(r"synthetic(?::(\d+)(?::(\S+))?)?", text)
    if match:
        frames, size = match.groups()
        hw = parse_frame_size(size, f"--source {text}") if size else None
        return SyntheticSource(int(frames) if frames else 300, hw=hw)
    if text.isdigit():
        return CaptureSource(int(text))
    if re.fullmatch(r"/dev/video\d+", text):
        if not Path(text).exists():
            raise EdgesegError(f"{text}: no such camera device")
        return CaptureSource(text)
    if text.lower().startswith(STREAM_PREFIXES):
        return CaptureSource(text)
    path = Path(text)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return ImageFolderSource(path)
    if path.is_file():
        return VideoFileSource(path)
    raise EdgesegError(f"--source {text}: not found; expected {SOURCE_FORMS}")
