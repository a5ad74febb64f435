"""The refinement network: tokens at the quadtree's nodes and at the 14x14 RoI context cells, a
small post-norm transformer encoder over them (or, for the ablation, none: each node alone), and
a pixel decoder to one mask logit per token."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sine_encoding(uv: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """DETR's 2-D sine encoding of (u, v) in [0, 1] -> [..., dim]: dim/2 channels for v then u,
    each sin/cos pairs over geometric frequencies of 2*pi*coordinate."""
    per = dim // 2
    i = torch.arange(per, dtype=uv.dtype, device=uv.device)
    inv = temperature ** (-2 * torch.div(i, 2, rounding_mode="floor") / per)
    phase = (i % 2) * (math.pi / 2)  # cos as a phase-shifted sin: one op
    angles = (uv[..., None] * 2 * math.pi) * inv + phase  # [..., 2, per]
    return torch.sin(angles.flip(-2)).flatten(-2)


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer, positions added to queries and keys (the official
    refinement encoder). Attention works on 4-D tensors (it exports to every runtime), fused
    (``scaled_dot_product_attention``; `benchmarks/attention_speed.py`: 4-5x faster than
    matmul-softmax-matmul in training on a CPU), with an additive bias per key."""

    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.heads = heads
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor, key_bias: Tensor) -> Tensor:
        """x, pos [K, T, dim]; key_bias [K, 1, 1, T] added to every query's attention logits."""
        k, t, d = x.shape
        h = self.heads
        q, key = (a.reshape(k, t, h, d // h).permute(0, 2, 1, 3) for a in self.qk(x + pos).split(d, -1))
        v = self.v(x).reshape(k, t, h, d // h).permute(0, 2, 1, 3)
        mixed = F.scaled_dot_product_attention(q, key, v, attn_mask=key_bias)
        x = self.norm1(x + self.out(mixed.permute(0, 2, 1, 3).reshape(k, t, d)))
        return self.norm2(x + self.ffn(x))


class Refiner(nn.Module):
    """Tokens [K, T, in_channels] (features and coarse probability at each token) with their (u, v)
    [K, T, 2] and weights [K, T] in [0, 1] -> one logit per token [K, T]. A token is seen by the
    others in proportion to its weight (log-weight added to the attention logits): 0 hides it, 1
    is plain attention."""

    def __init__(self, cfg, in_channels: int):
        super().__init__()
        self.dim = cfg.dim
        self.fuse = nn.Linear(in_channels, cfg.dim)
        layers = cfg.layers if cfg.mixer == "transformer" else 0
        self.layers = nn.ModuleList(EncoderLayer(cfg.dim, cfg.heads, cfg.ffn_dim) for _ in range(layers))
        if cfg.mixer == "mlp":  # the same depth of per-token computation, without attention
            self.mlp = nn.Sequential(*(m for _ in range(cfg.layers) for m in (nn.Linear(cfg.dim, cfg.dim), nn.ReLU())))
        self.decoder = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, 1))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, tokens: Tensor, uv: Tensor, weights: Tensor) -> Tensor:
        x = self.fuse(tokens)
        pos = sine_encoding(uv, self.dim)
        if hasattr(self, "mlp"):
            x = self.mlp(x + pos)
        # a floor instead of log(0) = -inf, which some runtimes turn into NaN in the softmax
        key_bias = weights.clamp_min(1e-12).log()[:, None, None, :].to(x.dtype)
        for layer in self.layers:
            x = layer(x, pos, key_bias)
        return self.decoder(x)[..., 0]


class FineStem(nn.Module):
    """Two 3x3 convs (the first stride 2) on the normalised image: detail at stride 2 for the finer
    quadtree levels."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels // 2, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels // 2, channels, 3, padding=1)

    def forward(self, images: Tensor) -> Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(images))))
