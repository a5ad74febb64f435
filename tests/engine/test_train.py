"""Training end to end on a tiny model: outputs, exact resume after SIGKILL, DDP on gloo."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgeseg.engine.checkpoint import load_model, read_checkpoint
from edgeseg.engine.train import lr_factor, train
from edgeseg.config import SolverConfig
from tests.helpers import REPO, tiny_overrides, tiny_recipe, tiny_shapes


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return tiny_shapes(tmp_path_factory.mktemp("shapes"))


def _cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "edgeseg.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def test_lr_schedule_warmup_and_steps():
    cfg = SolverConfig(base_lr=1.0, warmup_iters=10, warmup_factor=0.1, steps=[20, 30], gamma=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(5, cfg) == pytest.approx(0.55)
    assert lr_factor(10, cfg) == 1.0 and lr_factor(20, cfg) == pytest.approx(0.1)
    assert lr_factor(30, cfg) == pytest.approx(0.01)


def test_train_writes_checkpoints_log_and_evaluates(shapes, tmp_path):
    recipe = tiny_recipe(shapes, tmp_path / "run", steps=4)
    summary = train(recipe, show_progress=False, log=lambda *_: None)
    assert summary["step"] == 4
    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert any("eval" in r and set(r["eval"]) >= {"AP", "AP50"} for r in records)
    model, loaded_recipe, names = load_model(out / "best.pt")
    assert names == ["circle", "triangle", "rectangle", "star"]
    assert read_checkpoint(out / "last.pt")["train"]["step"] == 4
    assert not list(out.glob(".*tmp"))  # no leftovers of atomic writes


def test_resume_after_sigkill_matches_uninterrupted_run(shapes, tmp_path):
    steps = 8
    straight = tmp_path / "straight"
    train(tiny_recipe(shapes, straight, steps=steps), show_progress=False, log=lambda *_: None)

    killed = tmp_path / "killed"
    args = ["train", "quickstart", "--no-progress", *sum((["--set", s] for s in tiny_overrides(shapes, killed, steps)), [])]
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg.cli", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "last.pt").exists() and read_checkpoint(killed / "last.pt")["train"]["step"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = read_checkpoint(killed / "last.pt")["train"]["step"]
    assert interrupted_at < steps, "the run finished before it could be killed"

    resumed = _cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = read_checkpoint(straight / "last.pt")["model"]
    b = read_checkpoint(killed / "last.pt")["model"]
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-6, f"resumed weights differ by {worst} (killed at step {interrupted_at})"


def test_torchrun_two_processes_gloo(shapes, tmp_path):
    out = tmp_path / "ddp"
    sets = sum((["--set", s] for s in tiny_overrides(shapes, out, steps=3)), [])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "edgeseg.cli", "train", "quickstart", "--no-progress", *sets]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    state = read_checkpoint(out / "last.pt")
    assert state["train"]["step"] == 3
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())


def test_resume_without_checkpoint_is_one_line_error(shapes, tmp_path):
    args = sum((["--set", s] for s in tiny_overrides(shapes, tmp_path / "none")), [])
    result = _cli("train", "quickstart", "--resume", "--no-progress", *args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nothing to resume from" in result.stderr
