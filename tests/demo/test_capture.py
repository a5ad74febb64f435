"""The capture thread: newest frame for live sources, every frame for recorded ones, reconnects."""

import time

import numpy as np

from edgeseg.demo.capture import FrameGrabber
from edgeseg.errors import EdgesegError


class FakeCamera:
    """A live source driven by a script of read results; 'open_fail' makes the next open fail."""

    live = True
    name = "fake camera"
    fps = None

    def __init__(self, script, delay=0.0):
        self.script, self.delay, self.opens, self.frame_no = list(script), delay, 0, 0

    def open(self):
        self.opens += 1
        if self.script and self.script[0] == "open_fail":
            self.script.pop(0)
            raise EdgesegError("fake camera: cannot be opened")

    def read(self):
        time.sleep(self.delay)
        step = self.script.pop(0) if self.script else "lost"
        if step == "frame":
            self.frame_no += 1
            return "ok", np.full((4, 4, 3), self.frame_no, np.uint8)
        return step, None

    def close(self):
        pass


def drain(grabber, wait=0.0):
    got = []
    while (item := grabber.get(timeout=5)) is not None:
        got.append(item)
        time.sleep(wait)
    grabber.stop()
    return got


def test_lost_camera_is_retried_with_backoff_then_reported():
    script = ["frame", "frame", "lost", "open_fail", "frame", "lost", "open_fail", "open_fail"]
    logs = []
    grabber = FrameGrabber(FakeCamera(script), retries=2, backoff_s=0.01, log=logs.append).start()
    got = drain(grabber)
    # a live source hands over the newest frame: on a busy CPU the first can be replaced unseen
    assert len(got) + grabber.stats.dropped == 3 and got[-1][0] == 2
    assert grabber.stats.reconnects == 1
    assert "lost and not back after 2 retries" in grabber.stats.error
    assert any("retry 1/2 in 0.0 s" in line for line in logs) and any("back after 2 retries" in line for line in logs)


def test_live_source_hands_over_the_newest_frame_and_counts_drops():
    grabber = FrameGrabber(FakeCamera(["frame"] * 40 + ["end"], delay=0.002)).start()
    got = drain(grabber, wait=0.02)  # a slow consumer
    indices = [i for i, _ in got]
    assert grabber.stats.dropped > 0 and grabber.stats.dropped + len(got) == 40
    assert indices == sorted(indices) and indices[-1] == 39  # newest first, the last one delivered


def test_recorded_source_delivers_every_frame_in_order():
    camera = FakeCamera(["frame"] * 20 + ["skip", "frame", "end"])
    camera.live = False
    grabber = FrameGrabber(camera).start()
    got = drain(grabber, wait=0.002)
    assert [i for i, _ in got] == list(range(21))
    assert grabber.stats.dropped == 0 and grabber.stats.unreadable == 1


def test_prepare_runs_on_the_capture_thread():
    camera = FakeCamera(["frame", "frame", "end"])
    camera.live = False
    got = drain(FrameGrabber(camera, prepare=lambda f: f.sum()).start())
    assert [item[2] for item in got] == [16 * 3, 16 * 3 * 2]
