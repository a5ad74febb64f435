"""edgeseg/resources.py: recipes/, devices/ and calibration/ resolve in a checkout and, through the
same lookup, from a wheel's edgeseg/_data copy (.ci/wheel_check installs a real wheel)."""

from pathlib import Path

import pytest

from edgeseg import resources
from edgeseg.config import RECIPES_DIR, load_recipe, resolve_recipe_path
from edgeseg.devices import DEVICES_DIR, load_profile
from edgeseg.export.calibration import CALIBRATION_DIR, resolve_calibration

REPO = Path(__file__).resolve().parents[1]


def test_checkout_reads_the_repository_folders():
    for name in resources.DATA_FOLDERS:
        assert resources.resource_dir(name) == REPO / name
    assert (RECIPES_DIR, DEVICES_DIR, CALIBRATION_DIR) == (REPO / "recipes", REPO / "devices", REPO / "calibration")
    with pytest.raises(ValueError, match="unknown resource folder 'models'"):
        resources.resource_dir("models")


def test_lookup_by_name():
    assert resolve_recipe_path("quickstart") == RECIPES_DIR / "quickstart.yaml"
    assert load_recipe("quickstart").model.num_classes == 4  # its base resolves next to it
    assert load_profile("jetson").format == "tensorrt"
    assert (CALIBRATION_DIR / "shapes.txt").is_file()


def test_wheel_layout_is_used_outside_a_checkout(tmp_path, monkeypatch):
    """Without a pyproject.toml next to the package, the lookup reads edgeseg/_data/<name>."""
    monkeypatch.setattr(resources, "_REPO", tmp_path)
    expected = Path(__file__).resolve().parents[1] / "edgeseg" / "_data" / "devices"
    assert resources.resource_dir("devices") == expected


def _shapes_images(root: Path, names):
    for name in names:
        (root / "data/shapes/train/images").mkdir(parents=True, exist_ok=True)
        (root / "data/shapes/train/images" / name).write_bytes(b"")


def test_shipped_manifest_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    lines = [ln for ln in (CALIBRATION_DIR / "shapes.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines and all(ln.startswith("data/shapes/train/images/") for ln in lines)
    _shapes_images(tmp_path, [Path(ln).name for ln in lines])
    monkeypatch.chdir(tmp_path)
    for spec in ("shapes", str(CALIBRATION_DIR / "shapes.txt")):  # by name or by path
        calib = resolve_calibration(spec, warn=lambda *_: None)
        assert calib.images[0] == (tmp_path / lines[0]).resolve()
        assert len(calib.images) == len(lines)


def test_own_manifest_is_relative_to_itself(tmp_path, monkeypatch):
    _shapes_images(tmp_path / "sets", ["a.png"])
    manifest = tmp_path / "sets" / "mine.txt"
    manifest.write_text("# mine\ndata/shapes/train/images/a.png\n")
    monkeypatch.chdir(REPO)
    calib = resolve_calibration(str(manifest), warn=lambda *_: None)
    assert calib.images == [(tmp_path / "sets/data/shapes/train/images/a.png").resolve()]


def test_wheel_check_overrides_fit_the_quickstart_recipe():
    """.ci/wheel_check runs after the tests; its --set list must still match the quickstart's method."""
    import re
    import shlex

    script = (REPO / ".ci" / "wheel_check").read_text()
    block = re.search(r"^TINY=\((.*?)\)$", script, re.S | re.M).group(1)
    overrides = [kv for kv in shlex.split(block) if not kv.startswith(("data.train=", "data.val="))]
    assert any(kv.startswith("model.") for kv in overrides)
    load_recipe("quickstart", overrides)  # raises on a key the recipe does not have
