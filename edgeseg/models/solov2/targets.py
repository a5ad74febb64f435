"""SOLOv2's target assignment: which grid cells predict which object.

An object belongs to every level whose scale range holds sqrt of its box area (in input
pixels). On such a level, the cells of its centre region are positive for it: the box scaled by
``sigma`` around the mask's centre of mass, clipped to the 3x3 cells around the centre's cell.
Cells are addressed as the head returns them: level by level, row-major.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_boxes(masks: Tensor) -> Tensor:
    """Tight xyxy boxes [n, 4] (pixel edges) of binary masks [n, H, W]; empty masks give zeros."""
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[-2:]
    ys = torch.arange(h, device=masks.device)
    xs = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ys, h).amin(1)
    y1 = torch.where(rows, ys + 1, 0).amax(1)
    x0 = torch.where(cols, xs, w).amin(1)
    x1 = torch.where(cols, xs + 1, 0).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where((x1 > x0)[:, None], boxes, torch.zeros_like(boxes))


def mass_centres(masks: Tensor) -> Tensor:
    """(x, y) [n, 2] of binary masks' centres of mass, in input pixels (pixel centres at +0.5)."""
    m = masks.float()
    h, w = m.shape[-2:]
    area = m.sum((1, 2)).clamp(min=1)
    cy = (m.sum(2) * torch.arange(h, dtype=m.dtype, device=m.device)).sum(1) / area + 0.5
    cx = (m.sum(1) * torch.arange(w, dtype=m.dtype, device=m.device)).sum(1) / area + 0.5
    return torch.stack([cx, cy], 1)


def objects(target: dict) -> tuple[Tensor, Tensor]:
    """Boxes [n, 4] and centres [n, 2] of a target's objects: from its masks (tight box, centre of
    mass) or, trained from points, from its boxes (their centres)."""
    if "masks" in target:
        masks = target["masks"].bool()
        return mask_boxes(masks), mass_centres(masks)
    boxes = target["boxes"].float()
    return boxes, (boxes[:, :2] + boxes[:, 2:]) / 2


def assign(boxes: Tensor, centres: Tensor, labels: Tensor, input_hw: tuple[int, int], grids: list[int],
           scale_ranges: list[list[float]], sigma: float, background: int) -> tuple[Tensor, Tensor]:
    """For one image's objects (xyxy boxes [n, 4] and (x, y) centres [n, 2] in input pixels, in an
    input of ``input_hw``, labels [n]): per cell, its class (``background`` where none) and the
    index of its object (-1 where none). Where two objects claim a cell, the later one keeps it."""
    h, w = input_hw
    total = sum(s * s for s in grids)
    cell_labels = torch.full((total,), background, dtype=torch.int64)
    cell_objects = torch.full((total,), -1, dtype=torch.int64)
    if len(labels) == 0:
        return cell_labels, cell_objects
    boxes, centres = boxes.float().cpu(), centres.float().cpu()
    size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    scale = (size[:, 0] * size[:, 1]).sqrt()
    half_w, half_h = (0.5 * sigma * size).unbind(1)
    cx, cy = centres.unbind(1)
    offset = 0
    for s, (lo, hi) in zip(grids, scale_ranges):
        for i in torch.nonzero((scale >= lo) & (scale <= hi) & (scale > 0)).flatten().tolist():
            def cell(v: Tensor, extent: int) -> int:
                return min(max(int(float(v) / extent * s), 0), s - 1)

            row, col = cell(cy[i], h), cell(cx[i], w)
            top = max(cell(cy[i] - half_h[i], h), row - 1)
            bottom = min(cell(cy[i] + half_h[i], h), row + 1)
            left = max(cell(cx[i] - half_w[i], w), col - 1)
            right = min(cell(cx[i] + half_w[i], w), col + 1)
            rows = torch.arange(top, bottom + 1)
            cols = torch.arange(left, right + 1)
            cells = offset + (rows[:, None] * s + cols[None, :]).flatten()
            cell_labels[cells] = int(labels[i])
            cell_objects[cells] = i
        offset += s * s
    return cell_labels, cell_objects
