"""Adaptive 3D sampling and adaptive mixing (AdaMixer section 3.2-3.3), with the official
module names (``sampling_n_mixing.sampling_offset_generator.0``, ``.norm``,
``.adaptive_mixing.parameter_generator.0``, ``.adaptive_mixing.out_proj``).

Tensors stay 4-D throughout (the groups are folded into the batch), which some converters need.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.bilinear import grid_sample

LN2 = math.log(2.0)


def level_weights(z: Tensor, strides: list[int], single_level: int = -1, tau: float = 2.0) -> Tensor:
    """[..., L] weights of the pyramid levels for sampling points at scale ``z`` (log2 pixels):
    softmax(-(z - log2 stride)^2 / tau), or one-hot on ``single_level`` when it is >= 0."""
    if single_level >= 0:
        one_hot = torch.zeros(len(strides), dtype=z.dtype, device=z.device)
        one_hot[single_level] = 1
        return one_hot.expand(*z.shape, len(strides))
    grid = torch.tensor([math.log2(s) for s in strides], dtype=z.dtype, device=z.device)
    return torch.softmax(-((z[..., None] - grid) ** 2) / tau, dim=-1)


def sample_3d(features: list[Tensor], strides: list[int], points: Tensor, groups: int,
              single_level: int = -1) -> Tensor:
    """Bilinear samples of the group's channel slice at each point, summed over levels with
    their weights.

    features: per level [B, C, H_l, W_l] (C = G * c); points [B, N, G * P, 3] as (x, y) input
    pixels and z; returns [B * G, N, P, c].
    """
    b, n, gp, _ = points.shape
    p = gp // groups
    xy, z = points[..., :2], points[..., 2]
    weights = level_weights(z, strides, single_level)  # [B, N, G*P, L]
    out = None
    for level, (value, stride) in enumerate(zip(features, strides)):
        c = value.shape[1] // groups
        h, w = value.shape[-2:]
        # normalised for grid_sample: the map spans [0, w * stride) input pixels
        grid = torch.cat([xy[..., :1] / (w * stride), xy[..., 1:] / (h * stride)], -1) * 2 - 1
        grid = grid.reshape(b, n, groups, p * 2).permute(0, 2, 1, 3).reshape(b * groups, n, p, 2)
        sampled = grid_sample(value.reshape(b * groups, c, h, w), grid)  # [B*G, c, N, P]
        weight = weights[..., level].reshape(b, n, groups, p).permute(0, 2, 1, 3).reshape(b * groups, 1, n, p)
        sampled = sampled * weight
        out = sampled if out is None else out + sampled
    return out.permute(0, 2, 3, 1)  # [B*G, N, P, c]


class AdaptiveMixing(nn.Module):
    """Per query and group, a channel-mixing matrix M [c, c] and a spatial-mixing matrix
    S [P_out, P_in] generated from the query (or, with ``adaptive=False``, learned and shared by
    all queries: the paper's static ablation); returns query + out_proj(mixed)."""

    def __init__(self, feat_channels: int, query_dim: int, in_points: int, out_points: int, groups: int,
                 adaptive: bool = True):
        super().__init__()
        self.groups, self.in_points, self.out_points = groups, in_points, out_points
        self.channels = feat_channels // groups
        self.m_parameters = self.channels * self.channels
        self.s_parameters = in_points * out_points
        total = groups * (self.m_parameters + self.s_parameters)
        self.adaptive = adaptive
        if adaptive:
            self.parameter_generator = nn.Sequential(nn.Linear(query_dim, total))
        else:
            self.static_parameters = nn.Parameter(torch.empty(total))
        self.out_proj = nn.Linear(self.channels * out_points * groups, query_dim)
        self.act = nn.ReLU()

    @torch.no_grad()
    def init_weights(self) -> None:
        if self.adaptive:
            nn.init.zeros_(self.parameter_generator[-1].weight)  # starts as the static (bias) matrices
        else:
            bound = 1 / math.sqrt(self.out_proj.out_features)  # nn.Linear's bias init of the generator
            nn.init.uniform_(self.static_parameters, -bound, bound)

    def forward(self, x: Tensor, query: Tensor) -> Tensor:
        """x [B*G, N, P_in, c] sampled features, query [B, N, d] -> [B, N, d]."""
        b, n, _ = query.shape
        g, c = self.groups, self.channels
        if self.adaptive:
            params = self.parameter_generator(query)  # [B, N, G*(m+s)]
        else:
            params = self.static_parameters.expand(b, n, -1)
        params = params.reshape(b, n, g, -1).permute(0, 2, 1, 3).reshape(b * g, n, -1)
        m = params[..., : self.m_parameters].reshape(b * g, n, c, c)
        s = params[..., self.m_parameters :].reshape(b * g, n, self.out_points, self.in_points)
        out = torch.matmul(x, m)  # channel mixing
        out = self.act(F.layer_norm(out, out.shape[-2:]))
        out = torch.matmul(s, out)  # spatial mixing
        out = self.act(F.layer_norm(out, out.shape[-2:]))  # [B*G, N, P_out, c]
        out = out.reshape(b, g, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1)
        return query + self.out_proj(out)


class AdaptiveSamplingMixing(nn.Module):
    """Sampling offsets from the query, 3D sampling around its box, adaptive mixing, LayerNorm."""

    def __init__(self, content_dim: int, feat_channels: int, in_points: int, out_points: int, groups: int,
                 adaptive: bool = True, single_level: int = -1):
        super().__init__()
        self.groups, self.in_points, self.single_level = groups, in_points, single_level
        self.sampling_offset_generator = nn.Sequential(nn.Linear(content_dim, in_points * groups * 3))
        self.norm = nn.LayerNorm(content_dim)
        self.adaptive_mixing = AdaptiveMixing(feat_channels, content_dim, in_points, out_points, groups, adaptive)

    @torch.no_grad()
    def init_weights(self) -> None:
        last = self.sampling_offset_generator[-1]
        nn.init.zeros_(last.weight)
        bias = last.bias.view(self.groups, self.in_points, 3)
        nn.init.uniform_(bias, -0.5, 0.5)  # xy offsets in box units
        nn.init.constant_(bias[:, :, 2:3], -1.0)  # dz: one octave finer than the box
        self.adaptive_mixing.init_weights()

    def forward(self, features: list[Tensor], strides: list[int], query: Tensor, xyzr: Tensor) -> Tensor:
        points = sample_points(self.sampling_offset_generator(query), xyzr)
        sampled = sample_3d(features, strides, points, self.groups, self.single_level)
        return self.norm(self.adaptive_mixing(sampled, query))


def box_wh(xyzr: Tensor) -> Tensor:
    """Box width and height [..., 2] of (x, y, z, r): w = 2^(z - r/2), h = 2^(z + r/2)."""
    z, r = xyzr[..., 2:3], xyzr[..., 3:4]
    return torch.cat([pow2(z - 0.5 * r), pow2(z + 0.5 * r)], -1)


def pow2(x: Tensor) -> Tensor:
    return torch.exp(x * LN2)  # exp2 has no ONNX op


def sample_points(offsets: Tensor, xyzr: Tensor) -> Tensor:
    """offsets [B, N, G*P*3] in box units -> points [B, N, G*P, 3]: centre + offset * (w, h),
    z + dz."""
    b, n, _ = offsets.shape
    offsets = offsets.reshape(b, n, -1, 3)
    xy = xyzr[:, :, None, :2] + offsets[..., :2] * box_wh(xyzr)[:, :, None, :]
    z = xyzr[:, :, None, 2:3] + offsets[..., 2:3]
    return torch.cat([xy, z], -1)
