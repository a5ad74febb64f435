"""Dense self-supervised pre-training on unlabelled images (DenseCL-style, Wang et al., CVPR 2021):
no label of any kind, not even ImageNet's, reaches the features that Free Mask compares.

Two random views of an image (crop, flip, colour jitter) cover overlapping parts of it, and the
crop boxes say where every feature cell of one view lies in the other. A query cell's projection
must match the key (from a momentum copy of the network) at the same place of the image in the
other view, against the keys of every other place and image of the batch (pixel-level InfoNCE),
plus the same for the views' pooled features (global InfoNCE), half each, both view orders.
Writes the backbone's state dict, which ``--weights FILE`` of ``freemask`` and recipes load.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.data.image_folder import open_dataset
from edgeseg.errors import EdgesegError, fail
from edgeseg.io import check_output, write_bytes
from edgeseg.models.backbones import create_backbone
from edgeseg.models.bilinear import grid_sample
from edgeseg.preprocess import normalize


@dataclass
class PretrainConfig:
    backbone: str = "mobilenetv2"
    feature: str = "res4"  # the level trained densely (the one Free Mask compares)
    size: int = 128  # views are this many pixels square
    batch: int = 16
    steps: int = 1000
    lr: float = 0.05  # SGD, momentum 0.9, cosine to 0
    momentum: float = 0.99  # of the key encoder
    temperature: float = 0.2
    dim: int = 128  # projection width
    min_scale: float = 0.2  # a crop covers at least this fraction of the image
    seed: int = 0


def random_view(image: np.ndarray, cfg: PretrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A view (float32 normalised HxWx3, ``size`` square) and its box in the image's unit square
    (x0, y0, x1, y1), x0 > x1 when the view is mirrored."""
    h, w = image.shape[:2]
    area = rng.uniform(cfg.min_scale, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(1.0, np.sqrt(area * aspect)), min(1.0, np.sqrt(area / aspect))
    x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
    crop = image[int(y0 * h): max(int((y0 + ch) * h), int(y0 * h) + 1), int(x0 * w): max(int((x0 + cw) * w), int(x0 * w) + 1)]
    view = cv2.resize(crop, (cfg.size, cfg.size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    box = np.array([x0, y0, x0 + cw, y0 + ch], np.float32)
    if rng.random() < 0.5:
        view, box = view[:, ::-1], box[[2, 1, 0, 3]]
    view = view * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)  # brightness, contrast
    grey = view.mean(-1, keepdims=True)
    view = grey + (view - grey) * (0.0 if rng.random() < 0.2 else rng.uniform(0.6, 1.4))  # saturation / greyscale
    view = np.clip(view + rng.uniform(-20, 20, 3), 0, 255).astype(np.uint8)  # hue-ish shift per channel
    return normalize(np.ascontiguousarray(view)), box


def cell_positions(box: Tensor, h: int, w: int) -> Tensor:
    """[B, h*w, 2]: where each cell centre of a view's [h, w] grid lies in the image's unit square."""
    u = (torch.arange(w, dtype=box.dtype) + 0.5) / w
    v = (torch.arange(h, dtype=box.dtype) + 0.5) / h
    x = box[:, None, 0:1] + u[None, :, None] * (box[:, None, 2:3] - box[:, None, 0:1])  # [B, w, 1]
    y = box[:, None, 1:2] + v[None, :, None] * (box[:, None, 3:4] - box[:, None, 1:2])  # [B, h, 1]
    return torch.stack([x[:, None, :, 0].expand(-1, h, w), y[:, :, None, 0].expand(-1, h, w)], -1).flatten(1, 2)


def in_view(positions: Tensor, box: Tensor) -> tuple[Tensor, Tensor]:
    """Image positions [B, P, 2] -> (their place in another view's unit square [B, P, 2], inside it [B, P])."""
    lo, hi = box[:, None, :2], box[:, None, 2:]
    uv = (positions - lo) / (hi - lo)  # a mirrored box has hi < lo: the division mirrors too
    return uv, ((uv > 0) & (uv < 1)).all(-1)


class DenseHead(nn.Module):
    """Projections: per cell of the dense level, and of the last level's pooled features."""

    def __init__(self, dense_channels: int, last_channels: int, dim: int):
        super().__init__()
        self.dense = nn.Sequential(nn.Conv2d(dense_channels, dense_channels, 1), nn.ReLU(),
                                   nn.Conv2d(dense_channels, dim, 1))
        self.glob = nn.Sequential(nn.Linear(last_channels, last_channels), nn.ReLU(), nn.Linear(last_channels, dim))

    def forward(self, features: dict[str, Tensor], dense: str, last: str) -> tuple[Tensor, Tensor]:
        return (F.normalize(self.dense(features[dense]), dim=1),
                F.normalize(self.glob(features[last].mean((2, 3))), dim=1))


def info_nce(q: Tensor, k: Tensor, temperature: float) -> Tensor:
    """Mean InfoNCE of queries [N, D] against keys [N, D]: row i's positive is key i."""
    if len(q) == 0:
        return q.sum() * 0.0
    return F.cross_entropy(q @ k.t() / temperature, torch.arange(len(q), device=q.device))


def dense_loss(q_map: Tensor, k_map: Tensor, q_box: Tensor, k_box: Tensor, temperature: float,
               max_cells: int = 1024) -> Tensor:
    """Pixel-level InfoNCE: each query cell [B, D, h, w] against the key read where its image
    position falls in the other view (bilinear), negatives every other sampled key."""
    b, d, h, w = q_map.shape
    uv, inside = in_view(cell_positions(q_box, h, w), k_box)
    keys = grid_sample(k_map, (2 * uv - 1)[:, :, None])[..., 0].transpose(1, 2)  # [B, hw, D]
    queries = q_map.flatten(2).transpose(1, 2)
    q, k = queries[inside], F.normalize(keys[inside], dim=1)
    if len(q) > max_cells:  # bounds the logits matrix
        pick = torch.randperm(len(q), device=q.device)[:max_cells]
        q, k = q[pick], k[pick]
    return info_nce(q, k, temperature)


def pretrain(images, out, cfg: PretrainConfig, log=print) -> dict:
    """Train ``cfg.backbone`` from random weights on the images of ``images`` (annotations, if any,
    unread) and write its state dict to ``out`` (atomically). Returns a summary."""
    out = check_output(out, "pre-trained weights")
    if out.suffix not in (".pt", ".pth"):
        raise fail(out, "expected a .pt file name for the pre-trained weights")
    if cfg.steps < 1 or cfg.batch < 2 or cfg.size < 64:
        raise EdgesegError("pretrain: steps >= 1, batch >= 2 and size >= 64 are needed")
    dataset = open_dataset(images)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    # Every level through res5 is built and trained (res5 by the global loss), so that the weights
    # load into any model of the backbone.
    last = "res5"
    model = create_backbone(cfg.backbone, norm="BN", out_features=(cfg.feature, last))
    head = DenseHead(model.out_channels[cfg.feature], model.out_channels[last], cfg.dim)
    key_model, key_head = copy.deepcopy(model), copy.deepcopy(head)
    for p in [*key_model.parameters(), *key_head.parameters()]:
        p.requires_grad_(False)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=1e-4)
    cache: dict[int, np.ndarray] = {}
    start, losses = time.monotonic(), []
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        views, boxes = [[], []], [[], []]
        for i in rng.integers(len(dataset), size=cfg.batch):
            if int(i) not in cache:  # decoded once (setdefault would decode on every draw)
                cache[int(i)] = dataset.load_image(int(i))
            image = cache[int(i)]
            for v in range(2):
                x, box = random_view(image, cfg, rng)
                views[v].append(x.transpose(2, 0, 1))
                boxes[v].append(box)
        x = [torch.from_numpy(np.stack(v)) for v in views]
        box = [torch.from_numpy(np.stack(b)) for b in boxes]
        with torch.no_grad():
            keys = [key_head(key_model(xi), cfg.feature, last) for xi in x]
        queries = [head(model(xi), cfg.feature, last) for xi in x]
        loss = 0.0
        for a, b in ((0, 1), (1, 0)):
            loss = loss + 0.5 * dense_loss(queries[a][0], keys[b][0], box[a], box[b], cfg.temperature)
            loss = loss + 0.5 * info_nce(queries[a][1], keys[b][1], cfg.temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for p, k in zip([*model.parameters(), *head.parameters()], [*key_model.parameters(), *key_head.parameters()]):
                k.mul_(cfg.momentum).add_(p.detach(), alpha=1 - cfg.momentum)
            for b, k in zip([*model.buffers()], [*key_model.buffers()]):
                k.copy_(b)
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"step {step + 1}/{cfg.steps}: loss {np.mean(losses[-50:]):.3f}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(out, buffer.getvalue())
    return {"out": str(out), "steps": cfg.steps, "minutes": round((time.monotonic() - start) / 60, 2),
            "first_loss": float(np.mean(losses[:10])), "last_loss": float(np.mean(losses[-10:]))}
