"""The weight average: ramped decay, parameters averaged, integer buffers copied."""

import pytest
import torch

from edgeseg.engine.ema import WeightAverage


def test_average_follows_the_weights_with_a_ramped_decay():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.99)
    assert not any(p.requires_grad for p in average.module.parameters())
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked += 5
    average.update(model)
    d = 2 / 11  # (1 + n) / (10 + n) at the first update, far below 0.99
    assert average.current_decay() == pytest.approx(d)
    assert torch.allclose(average.module[0].weight, start + (1 - d))
    assert average.module[1].num_batches_tracked.item() == 5  # integers are copied, not averaged
    for _ in range(2000):
        average.update(model)
    assert average.current_decay() == 0.99
    assert torch.allclose(average.module[0].weight, model[0].weight, atol=1e-6)
