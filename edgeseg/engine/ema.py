"""An exponential moving average of a model's weights, the model that is evaluated and saved.

A short run with a high learning rate ends wherever the last few hundred noisy steps put it; the
average over them is a steadier model (Polyak averaging, as in YOLOv5's ModelEMA or timm's).
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """``module`` holds the average: parameters and floating-point buffers, updated after each
    optimizer step with ``decay`` ramped up from 0 (``(1 + n) / (10 + n)``), so that the first
    steps' random weights are not averaged in for long."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        live = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(live[name].detach(), 1 - d)
            else:
                value.copy_(live[name])

    def load(self, state: dict, updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
