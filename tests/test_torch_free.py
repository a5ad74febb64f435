"""A device install has no PyTorch: every command that cannot run says why in one line."""

import subprocess
import sys

import pytest

from tests.helpers import REPO, tiny_shapes

# torch unimportable, as in `pip install edgeseg` without the train extra
NO_TORCH = "import sys; sys.modules['torch'] = None; sys.argv[0] = 'edgeseg'; from edgeseg.cli import main; main()"


def run_without_torch(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    return tiny_shapes(tmp_path_factory.mktemp("tf") / "shapes", num_train=1, num_val=1) / "val"


@pytest.fixture
def commands(val, tmp_path):
    image = next((val / "images").iterdir())
    return {
        "eval": lambda m: ["eval", m, "--data", val, "--out", tmp_path / "res.json"],
        "predict": lambda m: ["predict", m, image, "--out", tmp_path / "pred"],
        "bench": lambda m: ["bench", m, "--no-progress", "--report", tmp_path / "bench"],
    }


@pytest.mark.parametrize("command", ["eval", "predict", "bench"])
def test_mistyped_bundle_and_checkpoint_without_torch(commands, command, tmp_path):
    assert_one_line_error(run_without_torch(*commands[command](tmp_path / "bundel")), "bundel",
                          "no such bundle folder or checkpoint")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"a checkpoint")
    assert_one_line_error(run_without_torch(*commands[command](checkpoint)), "model.pt",
                          "pip install 'edgeseg[train]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # nothing written


def test_train_says_which_extra_it_needs(tmp_path):
    result = run_without_torch("train", "sparseinst_shapes", "--set", f"train.output_dir={tmp_path / 'run'}")
    assert_one_line_error(result, "sparseinst_shapes", "train extra", "pip install 'edgeseg[train]'")
    assert not (tmp_path / "run").exists()
    # the recipe is still checked first: a bad value is the more useful message
    assert_one_line_error(run_without_torch("train", "sparseinst_shapes", "--set", "solver.ims_per_batch=0"),
                          "'solver.ims_per_batch' must be at least 1")
