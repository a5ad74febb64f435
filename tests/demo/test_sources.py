"""Frame sources: every --source form, and a one-line error for anything else."""

import cv2
import numpy as np
import pytest

from edgeseg.demo.sources import (CaptureSource, ImageFolderSource, SyntheticSource, VideoFileSource,
                                  parse_frame_size, parse_source)
from edgeseg.errors import EdgesegError


def read_all(source):
    source.open()
    out = []
    while (item := source.read())[0] != "end":
        out.append(item)
    source.close()
    return out


def test_parse_source_forms(tmp_path):
    assert isinstance(parse_source("synthetic"), SyntheticSource)
    assert parse_source("synthetic:7").frames == 7
    assert parse_source("synthetic:7:1280x720").hw == (720, 1280)
    assert isinstance(parse_source("0"), CaptureSource) and parse_source("0").spec == 0
    assert isinstance(parse_source("rtsp://10.0.0.2/stream"), CaptureSource)
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert isinstance(parse_source(str(tmp_path)), ImageFolderSource)
    (tmp_path / "v.mkv").write_bytes(b"x")
    assert isinstance(parse_source(str(tmp_path / "v.mkv")), VideoFileSource)


@pytest.mark.parametrize("spec, message", [
    ("webcam", "not found; expected a camera index"),
    ("/dev/video97", "no such camera device"),
    ("synthetic:0", "at least 1"),
    ("synthetic:5:1280", "--source synthetic:5:1280 1280: expected WIDTHxHEIGHT"),
    ("synthetic:5:8x720", "--source synthetic:5:8x720 8x720: each side must be 16 to 8192 pixels"),
])
def test_bad_source_strings(spec, message):
    with pytest.raises(EdgesegError, match=message):
        parse_source(spec).open()


def test_frame_sizes_are_width_by_height_with_one_line_errors():
    assert parse_frame_size("1280x720") == (720, 1280) and parse_frame_size(None) is None
    for text, message in [("1280", "expected WIDTHxHEIGHT"), ("x720", "expected WIDTHxHEIGHT"),
                          ("1280x-720", "expected WIDTHxHEIGHT"), ("9000x720", "each side must be 16 to 8192")]:
        with pytest.raises(EdgesegError, match=f"^--frame-size {text}: {message}"):
            parse_frame_size(text)
    with pytest.raises(EdgesegError, match="synthetic frames of 4x4: each side"):
        SyntheticSource(frames=1, hw=(4, 4))


def test_camera_index_that_does_not_exist():
    with pytest.raises(EdgesegError, match="camera 9: cannot be opened"):
        parse_source("9").open()


def test_file_that_is_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    with pytest.raises(EdgesegError, match="notes.mp4: not a readable video"):
        parse_source(str(bad)).open()


def test_synthetic_is_deterministic_and_finite():
    a, b = read_all(SyntheticSource(frames=5)), read_all(SyntheticSource(frames=5))
    assert len(a) == 5 and all(s == "ok" for s, _ in a)
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert a[0][1].shape == (256, 256, 3) and a[0][1].dtype == np.uint8
    assert not np.array_equal(a[0][1], a[1][1])  # it moves


def test_video_file_round_trip(tmp_path):
    path = tmp_path / "clip.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (64, 48))
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(4)]
    for f in frames:
        writer.write(f)
    writer.release()
    got = read_all(VideoFileSource(path))
    assert [s for s, _ in got] == ["ok"] * 4
    assert all(np.array_equal(g, f) for (_, g), f in zip(got, frames))  # grey: BGR == RGB


def test_image_folder_skips_unreadable_frames(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "1.png").write_bytes(b"\x89PNG broken")
    statuses = [s for s, _ in read_all(ImageFolderSource(tmp_path))]
    assert statuses == ["ok", "skip", "ok"]
