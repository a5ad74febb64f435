"""The LR schedule under a time budget: milestones at fractions of the budget, whatever a step costs."""

import json

import pytest

from edgeseg.config import SolverConfig
from edgeseg.engine.checkpoint import read_checkpoint
from edgeseg.engine.train import LRSchedule, lr_factor, train
from tests.helpers import tiny_recipe, tiny_shapes


class FakeClock:
    """Advances ``dt`` seconds at every reading: one reading per training step."""

    def __init__(self, dt: float):
        self.t, self.dt = 0.0, dt

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


def _simulate(cfg: SolverConfig, dt: float) -> list[tuple[int, float, float]]:
    """(step, fraction of the budget used before it, LR factor) for every step of a run."""
    schedule = LRSchedule(cfg, clock=FakeClock(dt))
    schedule.start()
    rows, step = [], 0
    while not schedule.done(step):
        rows.append((step, schedule.elapsed / schedule.budget, schedule.factor(step)))
        step += 1
        schedule.tick()
    return rows


def _drops(rows) -> list[float]:
    """Budget fraction at the first step of each LR level after the warm-up."""
    return [frac for (_, _, prev), (_, frac, f) in zip(rows, rows[1:]) if f < prev * 0.5]


@pytest.mark.parametrize("steps,warmup", [([2700, 3200], 200), ([1400], 0)])
def test_milestones_land_at_the_same_budget_fractions_for_slow_and_fast_steps(steps, warmup):
    # max_iter 3400: neither a 0.3 s nor a 1 s step reaches it in the 10 minutes.
    cfg = SolverConfig(max_iter=3400, steps=steps, warmup_iters=warmup, gamma=0.1, max_minutes=10)
    expected = [s / cfg.max_iter for s in steps]
    for dt in (0.3, 1.0):  # 2000 vs 600 steps fit in the budget, both below max_iter
        rows = _simulate(cfg, dt)
        assert len(rows) == pytest.approx(600 / dt, abs=1)
        drops = _drops(rows)
        assert len(drops) == len(expected)
        for got, want in zip(drops, expected):
            assert want <= got < want + dt / 600 + 1e-9, (dt, drops)
        # The warm-up ends at the same fraction too, and the run ends with the last LR level.
        if warmup:
            ramp_end = next(frac for _, frac, f in rows if f >= cfg.gamma ** 0 - 1e-12)
            assert warmup / cfg.max_iter <= ramp_end < warmup / cfg.max_iter + dt / 600 + 1e-9
        assert rows[-1][2] == pytest.approx(cfg.gamma ** len(steps))


def test_cosine_follows_the_budget_fraction_for_slow_and_fast_steps():
    """The quickstart's schedule: the LR at each fraction of the budget is the same whether a step
    takes 0.3 s or 1 s, and the run ends at the cosine's floor (gamma)."""
    import math

    cfg = SolverConfig(max_iter=3400, lr_schedule="cosine", gamma=0.01, warmup_iters=100, max_minutes=10)
    curves = {dt: _simulate(cfg, dt) for dt in (0.3, 1.0)}
    for fraction in (0.1, 0.25, 0.5, 0.75, 0.95):
        want = cfg.gamma + (1 - cfg.gamma) * 0.5 * (1 + math.cos(math.pi * fraction))
        for dt, rows in curves.items():
            got = next(f for _, frac, f in rows if frac >= fraction)
            assert got == pytest.approx(want, abs=(1 - cfg.gamma) * math.pi / 2 * dt / 600 + 1e-9), (dt, fraction)
    for rows in curves.values():
        assert rows[-1][2] == pytest.approx(cfg.gamma, abs=1e-3)
        assert all(b[2] <= a[2] + 1e-12 for a, b in zip(rows, rows[1:]) if a[1] >= 100 / 3400)  # falls after warm-up


def test_fast_machine_keeps_the_iteration_schedule():
    # A step of 0.1 s reaches max_iter before the 10-minute budget: detectron2 semantics.
    cfg = SolverConfig(max_iter=1700, steps=[1350, 1600], warmup_iters=100, max_minutes=10)
    rows = _simulate(cfg, 0.1)
    assert len(rows) == 1700
    assert all(f == pytest.approx(lr_factor(step, cfg)) for step, _, f in rows)


def test_without_budget_schedule_is_iteration_based_and_ignores_the_clock():
    cfg = SolverConfig(max_iter=100, steps=[50, 80], warmup_iters=10, max_minutes=0)
    schedule = LRSchedule(cfg, clock=FakeClock(1e6))
    schedule.start()
    for step in range(100):
        assert schedule.factor(step) == lr_factor(step, cfg) and not schedule.done(step)
        schedule.tick()
    assert schedule.done(100) and not schedule.out_of_time()


def test_state_is_plain_floats_and_round_trips():
    cfg = SolverConfig(max_iter=100, max_minutes=1)
    a = LRSchedule(cfg, clock=FakeClock(2.5))
    a.start()
    a.tick()
    a.tick()
    state = a.state_dict()
    assert state == {"elapsed_s": 5.0} and type(state["elapsed_s"]) is float
    b = LRSchedule(cfg)
    b.load_state_dict(state)
    assert b.progress(0) == a.progress(0) == pytest.approx(5 / 60)
    b.load_state_dict({"last_epoch": 3, "base_lrs": [0.1]})  # a LambdaLR state from an old last.pt
    assert b.elapsed == 0.0


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return tiny_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.mark.parametrize("dt", [0.3, 1.0])
def test_train_drops_lr_at_half_the_budget_whatever_a_step_costs(shapes, tmp_path, dt):
    budget_s = 6.0
    recipe = tiny_recipe(shapes, tmp_path / "run", steps=1000, **{
        "solver.steps": "[500]", "solver.max_minutes": budget_s / 60, "train.checkpoint_period": 1000})
    logs = []
    summary = train(recipe, show_progress=False, log=logs.append, clock=FakeClock(dt))
    assert summary["step"] == pytest.approx(budget_s / dt, abs=1)
    assert summary["time_capped"] and summary["schedule_completed"] == 1.0
    assert any("solver.max_minutes" in line and "100%" in line for line in logs)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    lrs = [(r["step"], r["lr"]) for r in records if "lr" in r]
    peak = max(lr for _, lr in lrs)
    after_peak = lrs[[lr for _, lr in lrs].index(peak):]
    first_low = next(step for step, lr in after_peak if lr < peak * 0.5)  # logged after the step it trained
    fraction = (first_low - 1) * dt / budget_s  # budget used before that step
    assert 0.5 <= fraction < 0.5 + dt / budget_s + 1e-9
    state = read_checkpoint(tmp_path / "run" / "last.pt")["train"]["scheduler"]
    assert state["elapsed_s"] == pytest.approx(summary["step"] * dt)


def test_resume_restores_the_elapsed_training_time(shapes, tmp_path):
    sets = {"solver.max_minutes": 1.0, "train.checkpoint_period": 1000}
    train(tiny_recipe(shapes, tmp_path / "run", steps=3, **sets), show_progress=False, log=lambda *_: None,
          clock=FakeClock(2.0))
    assert read_checkpoint(tmp_path / "run" / "last.pt")["train"]["scheduler"] == {"elapsed_s": 6.0}
    # Resuming into a longer run continues the budget from 6 s, not from 0.
    summary = train(tiny_recipe(shapes, tmp_path / "run", steps=5, **sets), resume=True, show_progress=False,
                    log=lambda *_: None, clock=FakeClock(2.0))
    assert summary["step"] == 5 and summary["train_minutes"] == pytest.approx(10.0 / 60, abs=0.01)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["train"]["scheduler"] == {"elapsed_s": 10.0}


def test_ramped_losses_rise_from_zero_over_ramp_iters_and_typos_are_refused():
    import torch

    from edgeseg.engine.train import ramp_losses
    from edgeseg.errors import EdgesegError

    cfg = SolverConfig(ramp_losses=["loss_pairwise"], ramp_iters=100)
    losses = {"loss_mask": torch.tensor(2.0), "loss_pairwise": torch.tensor(4.0)}
    assert {k: v.item() for k, v in ramp_losses(losses, cfg, 0).items()} == {"loss_mask": 2.0, "loss_pairwise": 0.0}
    assert ramp_losses(losses, cfg, 25)["loss_pairwise"].item() == 1.0
    assert ramp_losses(losses, cfg, 100) is losses
    assert ramp_losses(losses, SolverConfig(), 0) is losses
    with pytest.raises(EdgesegError, match=r"^solver.ramp_losses: loss_pairwse not among this model's losses "
                                           r"\(loss_mask, loss_pairwise\)$"):
        ramp_losses(losses, SolverConfig(ramp_losses=["loss_pairwse"], ramp_iters=100), 0, first=True)
    # after the first step, a batch that returns fewer terms (no objects) trains on
    fewer = {"loss_mask": torch.tensor(2.0)}
    assert ramp_losses(fewer, cfg, 30) == fewer
