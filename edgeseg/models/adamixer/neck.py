"""AdaMixer's neck and initial queries, with the official names (``neck.lateral_convs.{i}.conv``,
``neck.gn_out``, ``rpn_head.init_proposal_bboxes``, ``rpn_head.init_content_features``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.adamixer.sampling import LN2


class Lateral(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ChannelMapping(nn.Module):
    """One 1x1 conv per level to d channels and one GroupNorm(32, d) shared by all levels; no
    top-down path (AdaMixer's 3D sampling mixes the levels itself)."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.lateral_convs = nn.ModuleList(Lateral(c, out_channels) for c in in_channels)
        self.gn_out = nn.GroupNorm(math.gcd(32, out_channels), out_channels)
        for lateral in self.lateral_convs:
            nn.init.xavier_uniform_(lateral.conv.weight)
            nn.init.zeros_(lateral.conv.bias)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [self.gn_out(lateral(x)) for lateral, x in zip(self.lateral_convs, features)]


class InitialQueries(nn.Module):
    """N initial boxes covering the whole input (cxcywh 0.5, 0.5, 1, 1 of the image; stored but
    not learned) as (x, y, z, r), and N learned content vectors, LayerNorm-ed without affine."""

    def __init__(self, num_queries: int, dim: int):
        super().__init__()
        self.init_proposal_bboxes = nn.Embedding(num_queries, 4)
        self.init_content_features = nn.Embedding(num_queries, dim)
        with torch.no_grad():
            self.init_proposal_bboxes.weight[:, :2] = 0.5
            self.init_proposal_bboxes.weight[:, 2:] = 1.0
        self.init_proposal_bboxes.weight.requires_grad_(False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """-> (xyzr [B, N, 4] in input pixels, content [B, N, d]) for images [B, 3, H, W].

        The boxes cover the network input (padded to 32): the deployed graph sees no other size,
        so training uses the same (the official code uses each image's unpadded size)."""
        b, _, h, w = images.shape
        cxcywh = self.init_proposal_bboxes.weight.detach()
        size = torch.cat([cxcywh.new_ones(1) * w, cxcywh.new_ones(1) * h])
        xy, wh = cxcywh[:, :2] * size, cxcywh[:, 2:] * size
        z = 0.5 * torch.log(wh[:, :1] * wh[:, 1:]) / LN2  # log2 sqrt(w h)
        r = torch.log(wh[:, 1:] / wh[:, :1]) / LN2  # log2 h / w
        xyzr = torch.cat([xy, z, r], -1)[None].expand(b, -1, -1)
        content = F.layer_norm(self.init_content_features.weight, self.init_content_features.weight.shape[-1:])
        return xyzr, content[None].expand(b, -1, -1)
