"""Runtime-proof TopK: integer keys, ties by index."""

from __future__ import annotations

import torch

from edgeseg.models.ranking import MAX_ITEMS, ranking_keys, top_indices


def test_ranking_is_stable_under_tiny_differences():
    """What PyTorch and a runtime select must not depend on 1e-7 differences: near-equal scores
    order by index, whatever their last bits."""
    scores = torch.tensor([[0.30, 0.5 + 1e-7, 0.5, 0.5 - 1e-7, 0.9]])
    assert top_indices(scores, 4).tolist() == [[4, 1, 2, 3]]
    assert top_indices(torch.full((1, 5), 0.5), 3).tolist() == [[0, 1, 2]]  # exact ties: by index
    keys = ranking_keys(torch.rand(3, 784))
    assert all(len(set(k.tolist())) == 784 for k in keys)  # distinct, exact in float32


def test_keys_stay_exact_for_the_largest_count():
    keys = ranking_keys(torch.linspace(0, 1, MAX_ITEMS))
    assert len(set(keys.tolist())) == MAX_ITEMS and keys.max().item() <= 2 ** 24
