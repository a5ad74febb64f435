"""TopK that every runtime answers the same way.

Runtimes order equal TopK keys differently, and scores tie or nearly tie often (a saturated
sigmoid, an untrained head, masks that all score 0): a difference of 1e-7 between PyTorch and a
runtime must not change what an exported graph selects. Keys are therefore integers, unique per
index: the score in 1/256 steps, then the index (lower first), exactly representable in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

BUCKETS = 256
MAX_ITEMS = 2 ** 24 // (BUCKETS + 1)  # keys (buckets 0..256) stay exact integers in float32


def ranking_keys(scores: Tensor) -> Tensor:
    """[..., n] scores in [0, 1] (n <= MAX_ITEMS, 65280) -> distinct integer-valued float keys, larger = first."""
    n = scores.shape[-1]
    index = torch.arange(n, dtype=scores.dtype, device=scores.device)
    return torch.floor(scores.clamp(0, 1) * BUCKETS) * float(n) + (float(n - 1) - index)


def top_indices(scores: Tensor, count: int) -> Tensor:
    """Indices [..., count] of the ``count`` best of [..., n] scores in [0, 1], by :func:`ranking_keys`."""
    return torch.topk(ranking_keys(scores), count, dim=-1).indices
