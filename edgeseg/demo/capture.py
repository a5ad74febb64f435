"""Capture on its own thread. A live source (camera, stream) always hands over the newest frame
and counts the ones it overwrote; a recorded source (file, folder, synthetic) hands over every
frame, decoded one ahead. A lost live source is reopened with exponential backoff."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from edgeseg.errors import EdgesegError


@dataclass
class CaptureStats:
    captured: int = 0
    dropped: int = 0  # live frames replaced by a newer one before they were processed
    unreadable: int = 0  # frames that could not be decoded and were skipped
    reconnects: int = 0
    error: str = ""  # why capture stopped early (a lost camera that did not come back)


class FrameGrabber:
    def __init__(self, source, retries: int = 5, backoff_s: float = 0.5, prepare=None, log=print):
        """``prepare(frame)``, when given, runs here on the capture thread (e.g. the model's
        preprocessing), so the consumer gets ``(index, frame, prepare(frame), seconds)``."""
        self.source, self.retries, self.backoff_s, self.log = source, retries, backoff_s, log
        self.prepare = prepare
        self.stats = CaptureStats()
        self._cond = threading.Condition()
        self._frame = None  # (index, rgb) waiting to be taken
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgeseg-capture", daemon=True)

    def start(self) -> "FrameGrabber":
        self.source.open()  # errors (no such camera, not a video) surface here, on the caller's thread
        self._thread.start()
        return self

    def get(self, timeout: float | None = None):
        """The next frame as ``(index, rgb, ...)``, or None once the source has ended or stopped."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._done, timeout)
            item, self._frame = self._frame, None
            self._cond.notify_all()
            return item

    @property
    def finished(self) -> bool:
        """The source has ended (or was given up) and its last frame has been taken."""
        with self._cond:
            return self._done and self._frame is None

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self.source.close()

    def _put(self, item) -> None:
        with self._cond:
            if not self.source.live:
                self._cond.wait_for(lambda: self._frame is None or self._stop.is_set())
            elif self._frame is not None:
                self.stats.dropped += 1
            self._frame = item
            self._cond.notify_all()

    def _reopen(self) -> bool:
        for attempt in range(1, self.retries + 1):
            delay = self.backoff_s * 2 ** (attempt - 1)
            self.log(f"{self.source.name}: lost; retry {attempt}/{self.retries} in {delay:.1f} s")
            if self._stop.wait(delay):
                return False
            self.source.close()
            try:
                self.source.open()
            except EdgesegError:
                continue
            self.stats.reconnects += 1
            self.log(f"{self.source.name}: back after {attempt} retries")
            return True
        self.stats.error = f"{self.source.name}: lost and not back after {self.retries} retries"
        return False

    def _run(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                status, frame = self.source.read()
                if status == "ok":
                    self.stats.captured += 1
                    if self.prepare is None:
                        self._put((index, frame))
                    else:
                        t0 = time.perf_counter()
                        prepared = self.prepare(frame)
                        self._put((index, frame, prepared, time.perf_counter() - t0))
                    index += 1
                elif status == "skip":
                    self.stats.unreadable += 1
                elif status == "lost" and self.source.live:
                    if not self._reopen():
                        break
                else:  # end of a file, or a recorded source that failed
                    break
        except Exception as e:  # a backend crash ends capture with a reason instead of hanging the demo
            self.stats.error = f"{self.source.name}: capture failed ({type(e).__name__}: {e})"
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
