"""The demo end to end, headless: annotated video whose overlays match `edgeseg predict`."""

import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edgeseg.demo.run import HUD_HEIGHT, run_demo
from edgeseg.demo.sources import SyntheticSource
from edgeseg.errors import EdgesegError
from edgeseg.workflows import predict_images
from tests.helpers import REPO


def video_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def predict_overlay(bundle, frame, tmp_path):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (overlay,) = predict_images(bundle, [image], tmp_path / "predict")
    return cv2.cvtColor(cv2.imread(str(overlay)), cv2.COLOR_BGR2RGB)


def drawn(bundle, frame):
    """How many detections the overlay of ``frame`` draws (score >= 0.3, the demo's threshold): with
    none, overlays "match" because both are the plain frame."""
    from edgeseg.runtime import Predictor

    return int((Predictor(bundle)(frame).scores >= 0.3).sum())


def test_synthetic_demo_writes_video_matching_predict(tiny_bundle, tmp_path):
    out = tmp_path / "demo.mkv"  # FFV1: lossless, so overlays compare exactly
    summary = run_demo(tiny_bundle, "synthetic:6", show=None, save=str(out), log=lambda *_: None)
    assert summary["frames"] == 6 and summary["dropped"] == 0 and summary["window"] is False
    assert summary["fps_end_to_end"] > 0 and summary["fps_model_only"] > 0 and summary["error"] is None
    frames = video_frames(out)
    assert len(frames) == 6 and not list(tmp_path.glob(".demo*"))
    source = SyntheticSource(frames=6)
    for k in (0, 5):
        assert drawn(tiny_bundle, source.frame(k)) >= 1  # the tiny model was overfitted on these scenes
        expected = predict_overlay(tiny_bundle, source.frame(k), tmp_path)
        assert not np.array_equal(expected, source.frame(k))
        assert np.array_equal(frames[k][HUD_HEIGHT:], expected[HUD_HEIGHT:])
        assert not np.array_equal(frames[k][:HUD_HEIGHT], expected[:HUD_HEIGHT])  # the FPS band


def test_video_file_demo_matches_predict_on_the_same_frame(tiny_bundle, tmp_path):
    clip = tmp_path / "clip.avi"
    source = SyntheticSource(frames=5, seed=3)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 15, (256, 256))
    for k in range(5):
        writer.write(cv2.cvtColor(source.frame(k), cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "annotated.mkv"
    summary = run_demo(tiny_bundle, str(clip), save=str(out), log=lambda *_: None)
    assert summary["frames"] == 5
    decoded = video_frames(clip)  # what the demo saw (MJPG is lossy)
    annotated = video_frames(out)
    assert drawn(tiny_bundle, decoded[3]) >= 1
    expected = predict_overlay(tiny_bundle, decoded[3], tmp_path)
    assert np.array_equal(annotated[3][HUD_HEIGHT:], expected[HUD_HEIGHT:])


def test_show_without_display_runs_headless(tiny_bundle, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    logs = []
    summary = run_demo(tiny_bundle, "synthetic:2", show=True, log=logs.append)
    assert summary["window"] is False and any("headless" in line for line in logs)


def test_failed_run_leaves_no_video(tiny_bundle, tmp_path):
    out = tmp_path / "demo.mp4"
    with pytest.raises(EdgesegError, match="unknown video suffix"):
        run_demo(tiny_bundle, "synthetic:2", save=str(tmp_path / "demo.gif"), log=lambda *_: None)
    assert not list(tmp_path.iterdir())
    with pytest.raises(EdgesegError, match="at least 1"):
        run_demo(tiny_bundle, "synthetic:2", save=str(out), threads=0, log=lambda *_: None)
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--source", "7"], "camera 7: cannot be opened"),
    (["--source", "ftp-camera"], "expected a camera index"),
    (["--threads", "0", "--source", "synthetic:1"], "--threads must be at least 1"),
    (["--source", "rtsp://127.0.0.1:1/cam"], "rtsp://127.0.0.1:1/cam: cannot open stream"),  # and no FFmpeg line
    (["--source", "synthetic:1", "--save", "edgeseg"], "edgeseg: is a folder; expected a file name for the video"),
])
def test_cli_errors_are_one_line(tiny_bundle, args, message):
    run = subprocess.run([sys.executable, "-m", "edgeseg.cli", "demo", str(tiny_bundle), *args], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and message in run.stderr


def test_cli_summary(tiny_bundle, tmp_path):
    run = subprocess.run([sys.executable, "-m", "edgeseg.cli", "demo", str(tiny_bundle), "--source", "synthetic:3",
                          "--no-show"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["frames"] == 3 and "end-to-end" in run.stderr


def test_image_folder_of_mixed_sizes_keeps_every_frame(tiny_bundle, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    source = SyntheticSource(frames=3)
    for k, (h, w) in enumerate([(256, 256), (200, 320), (256, 256)]):
        cv2.imwrite(str(frames / f"{k}.png"), cv2.resize(source.frame(k), (w, h)))
    logs = []
    out = tmp_path / "demo.mkv"
    summary = run_demo(tiny_bundle, str(frames), save=str(out), log=logs.append)
    assert summary["frames"] == 3 and len(video_frames(out)) == 3
    assert any("1 frame(s) of another size letterboxed to 256x256" in line for line in logs)


def test_sigterm_ends_the_demo_without_a_partial_video(tiny_bundle, tmp_path):
    out = tmp_path / "demo.mp4"
    demo = subprocess.Popen([sys.executable, "-m", "edgeseg.cli", "demo", str(tiny_bundle), "--source",
                             "synthetic:100000", "--no-show", "--save", str(out)], cwd=REPO, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    partial = tmp_path / ".demo.partial.mp4"
    deadline = time.monotonic() + 60
    while not partial.exists() and demo.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert partial.exists(), "the demo never started writing"
    demo.send_signal(signal.SIGTERM)
    _, err = demo.communicate(timeout=60)
    assert demo.returncode == 143 and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())
