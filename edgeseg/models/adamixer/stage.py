"""One AdaMixer decoder stage (official ``AdaMixerDecoderStage``, same parameter names):
self-attention between queries with a log-IoF bias, adaptive 3D sampling and mixing, FFN, and the
class and box heads; the box is refined in (x, y, z, r) form."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.adamixer.sampling import AdaptiveSamplingMixing, box_wh, pow2
from edgeseg.models.box_ops import pairwise_iof


def decode_box(xyzr: Tensor) -> Tensor:
    """(x, y, z, r) -> xyxy input pixels."""
    wh = box_wh(xyzr)
    return torch.cat([xyzr[..., :2] - 0.5 * wh, xyzr[..., :2] + 0.5 * wh], -1)


def position_embedding(xyzr: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """Sinusoidal embedding [B, N, dim] of (x/1000, y/1000, z, r), dim/4 channels each,
    interleaved sin/cos as the official code (cos written as a phase-shifted sin: one op)."""
    per = dim // 4
    i = torch.arange(per, dtype=xyzr.dtype, device=xyzr.device)
    inv = temperature ** (-2 * torch.div(i, 2, rounding_mode="floor") / per)
    phase = (i % 2) * (math.pi / 2)
    scaled = xyzr / torch.tensor([1000.0, 1000.0, 1.0, 1.0], dtype=xyzr.dtype, device=xyzr.device)
    angles = scaled[..., None] * inv + phase  # [B, N, 4, per]
    return torch.sin(angles).flatten(2)


class IoFAttention(nn.Module):
    """Multi-head self-attention (weights in ``attn``, an ``nn.MultiheadAttention``, as mmcv keeps
    them) computed with 4-D tensors so that the additive per-head bias exports faithfully; the
    residual adds the attention to its input, as mmcv's ``MultiheadAttention`` does."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads)
        self.heads = heads

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        b, n, d = x.shape
        h = self.heads
        qkv = F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias)  # [B, N, 3d]
        q, k, v = (t.reshape(b, n, h, d // h).permute(0, 2, 1, 3) for t in qkv.split(d, -1))
        logits = torch.matmul(q, k.transpose(-1, -2)) * (d // h) ** -0.5  # [B, H, N, N]
        if bias is not None:
            logits = logits + bias
        out = torch.matmul(torch.softmax(logits, -1), v).permute(0, 2, 1, 3).reshape(b, n, d)
        return x + self.attn.out_proj(out)


class FFN(nn.Module):
    """mmcv ``FFN`` with two layers: ``layers.0.0`` Linear + ReLU, ``layers.1`` Linear; residual."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU()), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)


def _head(dim: int) -> nn.ModuleList:
    return nn.ModuleList([nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU()])


class DecoderStage(nn.Module):
    def __init__(self, cfg, num_classes: int):
        super().__init__()
        d = cfg.content_dim
        self.iof_bias = cfg.iof_bias
        self.attention = IoFAttention(d, cfg.heads)
        self.attention_norm = nn.LayerNorm(d)
        self.sampling_n_mixing = AdaptiveSamplingMixing(d, cfg.feat_channels, cfg.in_points, cfg.out_points,
                                                        cfg.groups, cfg.adaptive_mixing, cfg.single_level)
        self.ffn = FFN(d, cfg.ffn_dim)
        self.ffn_norm = nn.LayerNorm(d)
        self.cls_fcs = _head(d)
        self.fc_cls = nn.Linear(d, num_classes)
        self.reg_fcs = _head(d)
        self.fc_reg = nn.Linear(d, 4)
        self.iof_tau = nn.Parameter(torch.ones(cfg.heads))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
                nn.init.xavier_uniform_(m.weight)
        nn.init.xavier_uniform_(self.attention.attn.in_proj_weight)
        nn.init.zeros_(self.attention.attn.in_proj_bias)
        nn.init.constant_(self.fc_cls.bias, -math.log((1 - 0.01) / 0.01))  # prior probability 0.01
        nn.init.zeros_(self.fc_reg.weight)
        nn.init.zeros_(self.fc_reg.bias)
        nn.init.uniform_(self.iof_tau, 0.0, 4.0)
        self.sampling_n_mixing.init_weights()

    def forward(self, features: list[Tensor], strides: list[int], query: Tensor, xyzr: Tensor):
        """-> (class logits [B, N, C], refined xyzr [B, N, 4], query [B, N, d])."""
        bias = None
        if self.iof_bias:
            with torch.no_grad():
                boxes = decode_box(xyzr)
                iof = torch.log(pairwise_iof(boxes, boxes) + 1e-7)[:, None]  # [B, 1, N, N]
            bias = iof * self.iof_tau.view(1, -1, 1, 1)
        with torch.no_grad():
            pe = position_embedding(xyzr, query.shape[-1])
        query = self.attention_norm(self.attention(query + pe, bias))
        query = self.sampling_n_mixing(features, strides, query, xyzr)
        query = self.ffn_norm(self.ffn(query))
        cls_feat, reg_feat = query, query
        for layer in self.cls_fcs:
            cls_feat = layer(cls_feat)
        for layer in self.reg_fcs:
            reg_feat = layer(reg_feat)
        return self.fc_cls(cls_feat), refine(xyzr, self.fc_reg(reg_feat)), query


def refine(xyzr: Tensor, delta: Tensor) -> Tensor:
    """x, y move by delta * 2^z (the box's scale); z, r add their deltas."""
    xy = xyzr[..., :2] + delta[..., :2] * pow2(xyzr[..., 2:3])
    return torch.cat([xy, xyzr[..., 2:] + delta[..., 2:]], -1)
