"""edgeseg/export/calibration.py: which images a calibration set names, and the warnings about
how many there are."""

import cv2
import numpy as np
import pytest

from edgeseg.errors import EdgesegError
from edgeseg.export.calibration import DEFAULT_IMAGES, ENOUGH_IMAGES, RECOMMENDED_IMAGES, resolve_calibration


def _folder(root, count):
    root.mkdir()
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(count):
        cv2.imwrite(str(root / f"{i:04d}.png"), image)
    return root


def test_a_folder_a_count_and_the_warnings(tmp_path):
    big = _folder(tmp_path / "big", ENOUGH_IMAGES + 1)
    said = []
    calib = resolve_calibration(str(big), warn=said.append)
    assert len(calib.images) == ENOUGH_IMAGES + 1
    assert len(said) == 1 and f"--calib {big}:{DEFAULT_IMAGES}" in said[0]
    said.clear()
    calib = resolve_calibration(f"{big}:{RECOMMENDED_IMAGES}", warn=said.append)
    assert [p.name for p in calib.images] == [f"{i:04d}.png" for i in range(RECOMMENDED_IMAGES)] and not said
    calib = resolve_calibration(f"{big}:3", warn=said.append)
    assert len(calib.images) == 3 and "3 calibration images" in said[0]


def test_an_empty_or_missing_set_is_one_line_naming_it(tmp_path):
    empty = _folder(tmp_path / "empty", 0)
    with pytest.raises(EdgesegError, match="empty.*calibration set is empty"):
        resolve_calibration(str(empty), warn=lambda _: None)
    with pytest.raises(EdgesegError, match="nowhere.*not found"):
        resolve_calibration(str(tmp_path / "nowhere"), warn=lambda _: None)


def test_without_calib_the_export_takes_the_first_training_images(tmp_path):
    from types import SimpleNamespace

    from edgeseg.export import _calibration_set

    train = _folder(tmp_path / "train", DEFAULT_IMAGES + 5)
    said = []
    calib = _calibration_set(None, SimpleNamespace(data=SimpleNamespace(train=str(train))), said.append)
    assert [p.name for p in calib.images] == [f"{i:04d}.png" for i in range(DEFAULT_IMAGES)]
    assert said == [f"calibrating on the first {DEFAULT_IMAGES} images of {train} at most (--calib to choose)"]
