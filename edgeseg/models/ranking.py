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


def fade_in(scores: Tensor, count: int, width: float) -> Tensor:
    """Weights [..., n] in [0, 1] for the ``count`` items that :func:`top_indices` selects from
    [..., n] scores: 0 up to one bucket above the best score left out (the (count+1)-th), rising
    linearly to 1 over ``width``; read them at the selected items only.

    The keys make a selection deterministic, not stable: where two scores near the cut differ by
    less than a runtime's noise, PyTorch and the runtime select different items, and an output that
    uses an item fully or not at all jumps (measured on Mask Transfiner: 0.34 on a mask probability).
    These weights are a continuous function of the scores (the (count+1)-th best value does not
    depend on tie-breaking), so such noise moves the output by about noise / ``width``. An item
    weighted above 0 scores more than a bucket above the (count+1)-th best, so its key beats those
    of at least n - count items: it is selected whatever the tie-breaking. ``width`` 0: 1
    everywhere (a hard cut)."""
    n = scores.shape[-1]
    if width <= 0 or count >= n:
        return torch.ones_like(scores)
    # the (count+1)-th best value, read by index: litert-torch lowers a TopK whose values alone are
    # used to a SORT that LiteRT cannot run; whichever index a runtime returns holds that value
    left_out = scores.gather(-1, torch.topk(scores, count + 1, dim=-1).indices[..., -1:])
    return ((scores - left_out - 1.0 / BUCKETS) / width).clamp(0, 1)
