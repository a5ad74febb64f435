"""SOLOv2's inference as a static graph (what every runtime runs): the best cells, their dynamic
masks, maskness, the stride filter and Matrix NMS, all with fixed shapes.

As published (WXinlong/SOLO ``solov2_head.get_seg_single``) up to two changes that make shapes
static: a fixed number of candidate cells instead of those over the score threshold, and one
class per cell (its best) instead of every class over the threshold. Scores leave the graph as
the ``query_masks`` kind expects them: per candidate, the category score decayed by Matrix NMS
at its class and 0 elsewhere; the shared postprocess multiplies in the maskness, as SOLO does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgeseg.models.matrix_nms import matrix_nms
from edgeseg.models.ranking import top_indices


def cell_strides(grids: list[int], strides: list[int]) -> Tensor:
    """The stride of every cell's level [cells]: a mask must cover more stride-4 cells than this."""
    return torch.cat([torch.full((s * s,), float(st)) for s, st in zip(grids, strides)])


def _take(x: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` [B, K] of x [B, N, ...]."""
    return x.gather(1, index.reshape(*index.shape, *[1] * (x.dim() - 2)).expand(*index.shape, *x.shape[2:]))


def query_masks(logits: Tensor, kernels: Tensor, features: Tensor, strides: Tensor, candidates: int,
                mask_threshold: float, kernel: str, sigma: float) -> dict[str, Tensor]:
    """Class logits [B, cells, C], kernels [B, cells, E], mask features [B, E, h, w], cell strides
    [cells] -> ``scores`` [B, K, C] and mask ``masks`` logits [B, K, h, w], best first."""
    b, cells, c = logits.shape
    k = min(candidates, cells)
    probs = logits.sigmoid()
    best, labels = probs.max(-1)
    top = top_indices(best, k)  # [B, K]
    score, label = best.gather(1, top), labels.gather(1, top)
    masks = torch.bmm(_take(kernels, top), features.flatten(2))  # [B, K, h*w]: the 1x1 dynamic convolutions
    soft = masks.sigmoid()
    binary = (soft > mask_threshold).to(soft.dtype)
    area = binary.sum(-1)
    maskness = (soft * binary).sum(-1) / area.clamp(min=1.0)
    large = (area > strides.to(area)[top]).to(score.dtype)
    order = top_indices(score * maskness * large, k)  # Matrix NMS wants the masks best first
    score, label = score.gather(1, order) * large.gather(1, order), label.gather(1, order)
    decay = matrix_nms(_take(binary, order), label, torch.ones_like(score), kernel=kernel, sigma=sigma)
    classes = torch.arange(c, device=label.device)
    scores = (label[..., None] == classes).to(score.dtype) * (score * decay)[..., None]
    return {"scores": scores, "masks": _take(masks, order).reshape(b, k, *features.shape[-2:])}
