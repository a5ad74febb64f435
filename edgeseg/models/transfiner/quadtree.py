"""The quadtree of a 28x28 RoI mask as static tensors: which cells each level refines, where its
nodes lie in the box, and how refined values overwrite a level before it is upsampled.

Levels are 28, 56 and 112 cells per side. Level 28 refines the top ``cells[0]`` cells; level 56
the 4 children of each of the top ``cells[1]``; level 112 the 16 children of the top ``cells[2]``
(the official code refines every child of a cell over a threshold: a variable count). Counts are
fixed so that the graph has static shapes: TopK instead of ``nonzero``, gather/scatter with
computed indices, no loop over instances.

Cells are ranked by :mod:`edgeseg.models.ranking`'s keys (runtimes break TopK ties differently);
the same keys pick the refined detections. A node's refinement fades in above its level's cut
(``fade_in``), so that runtime noise in the scores cannot swap a fully refined node for an
unrefined one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.models.ranking import fade_in, top_indices

GRID = 28
LEVELS = (28, 56, 112)
_CELLS = GRID * GRID


def children(cells: Tensor, factor: int) -> Tensor:
    """Flat indices at grid ``28 * factor`` of every child of the 28x28 ``cells`` [K, n] -> [K, n * factor^2]."""
    row, col = torch.div(cells, GRID, rounding_mode="floor"), cells % GRID
    offsets = torch.arange(factor, device=cells.device)
    rows = (row * factor)[..., None, None] + offsets[:, None]  # [K, n, f, 1]
    cols = (col * factor)[..., None, None] + offsets[None, :]  # [K, n, 1, f]
    return (rows * (GRID * factor) + cols).flatten(1)


def level_nodes(scores: Tensor, cells: list[int], fade: float = 0.0) -> tuple[list[Tensor], list[Tensor]]:
    """Per level (28, 56, 112), the flat node indices [K, n_level] at that level's grid and each
    node's weight [K, n_level] (its cell's :func:`fade_in` at that level's cut; ``fade`` 0: all 1)."""
    order = top_indices(scores, max(cells))  # one TopK: each level takes a prefix of the same order
    nodes, weights = [], []
    for count, factor in zip(cells, (1, 2, 4)):
        top = order[:, :count]
        weight = fade_in(scores, count, fade).gather(1, top)
        nodes.append(children(top, factor) if factor > 1 else top)
        # children() lists each cell's factor^2 children together
        weights.append(weight[..., None].expand(-1, -1, factor * factor).reshape(weight.shape[0], -1))
    return nodes, weights


def cell_centres(index: Tensor, grid: int) -> Tensor:
    """Flat cell indices [K, n] at ``grid`` -> (u, v) centres in the box's unit square [K, n, 2]."""
    row, col = torch.div(index, grid, rounding_mode="floor"), index % grid
    return torch.stack([(col.to(torch.float32) + 0.5) / grid, (row.to(torch.float32) + 0.5) / grid], -1)


def grid_centres(grid: int, count: int, device=None) -> Tensor:
    """Every cell centre of a ``grid`` x ``grid`` box grid, row-major, for ``count`` boxes [count, grid^2, 2]."""
    index = torch.arange(grid * grid, device=device)[None].expand(count, -1)
    return cell_centres(index, grid)


def in_image(uv: Tensor, boxes: Tensor) -> Tensor:
    """(u, v) in the unit square of boxes [K, 4] (xyxy) -> (x, y) input pixels [K, n, 2]."""
    return boxes[:, None, :2] + uv * (boxes[:, None, 2:] - boxes[:, None, :2])


def assemble(coarse: Tensor, nodes: list[Tensor], values: list[Tensor], weights: list[Tensor] | None = None) -> Tensor:
    """Coarse 28x28 logits [K, 28, 28] with each level's nodes overwritten by their refined logits
    (moved toward them by their ``weights`` where given), upsampled bilinearly to the next level:
    probabilities [K, 112, 112].

    Levels are upsampled as probabilities, as the coarse head's masks are pasted, not as logits: a
    logit interpolated between a confident background (-9) and a half-covered cell (0) crosses 0.5
    next to the cell's centre, eroding every thin part (`benchmarks/transfiner_oracle.py`: GT boxes
    and GT RoIAlign masks on the thin-shapes val, mask IoU 0.964 pasted from 28x28, 0.936 through
    logit-space levels, 0.957 through probability levels). Cell centres stay at (i + 0.5) / grid
    of the box at every level (``align_corners=False``, as the nodes are placed and as the mask is
    pasted); the official code aligns corners here, shifting finer levels by up to half a cell."""
    k = coarse.shape[0]
    out = coarse.sigmoid().reshape(k, -1)
    for level, (index, value) in enumerate(zip(nodes, values)):
        if level:
            out = upsample(out.reshape(k, LEVELS[level - 1], LEVELS[level - 1]), LEVELS[level]).reshape(k, -1)
        value = value.sigmoid().to(out.dtype)
        if weights is not None:
            value = torch.lerp(out.gather(1, index), value, weights[level].to(out.dtype))
        out = out.scatter(1, index, value)
    return out.reshape(k, LEVELS[-1], LEVELS[-1])


def upsample(probs: Tensor, size: int) -> Tensor:
    """[K, S, S] -> [K, size, size], bilinear with cell centres kept (``align_corners=False``)."""
    return F.interpolate(probs[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def to_logits(probs: Tensor, eps: float = 1e-6) -> Tensor:
    """Probabilities -> logits, clamped to [eps, 1 - eps] (the ``roi_masks`` kind carries logits)."""
    probs = probs.clamp(eps, 1 - eps)
    return torch.log(probs) - torch.log(1 - probs)
