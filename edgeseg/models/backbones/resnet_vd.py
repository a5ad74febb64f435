"""ResNet-50-vd with timm ``resnet50d`` parameter names (the official SparseInst R-50-vd weights).

"vd": a three-conv deep stem, the stride on the 3x3 conv, and avg-pool-then-1x1 downsampling.
"""

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.backbones import FEATURE_STRIDES, register_backbone
from edgeseg.models.layers import get_norm, msra_init_

LAYERS = {"layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}


def _norm(norm: str, channels: int) -> nn.Module:
    # Identity keeps Sequential indices (and so key names) stable when norm is "".
    return get_norm(norm, channels) or nn.Identity()


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, norm: str) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = _norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = _norm(norm, out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            pool: nn.Module = nn.Identity() if stride == 1 else nn.AvgPool2d(
                2, stride, ceil_mode=True, count_include_pad=False)
            self.downsample = nn.Sequential(pool, nn.Conv2d(in_ch, out_ch, 1, bias=False),
                                            _norm(norm, out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetVD(nn.Module):
    """Deep stem + layer1..layerN; layers past the deepest requested feature are not built."""

    def __init__(self, depths: Sequence[int], norm: str, out_features: Sequence[str]) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), _norm(norm, 32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), _norm(norm, 32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False))
        self.bn1 = _norm(norm, 64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.out_features = tuple(out_features)
        feats = list(LAYERS.values())
        n_layers = max(feats.index(f) for f in out_features) + 1
        self.layer_names = tuple(LAYERS)[:n_layers]
        self.out_channels: dict[str, int] = {}
        in_ch = 64
        for i, name in enumerate(self.layer_names):
            planes = 64 * 2**i
            stride = 1 if i == 0 else 2
            blocks = [Bottleneck(in_ch if j == 0 else planes * 4, planes, stride if j == 0 else 1, norm)
                      for j in range(depths[i])]
            self.add_module(name, nn.Sequential(*blocks))
            in_ch = planes * 4
            if LAYERS[name] in self.out_features:
                self.out_channels[LAYERS[name]] = in_ch
        self.out_channels = {f: self.out_channels[f] for f in self.out_features}
        self.out_strides = {f: FEATURE_STRIDES[f] for f in self.out_features}
        self.ignored_weight_prefixes = ("fc.",) + tuple(
            f"{n}." for n in LAYERS if n not in self.layer_names)
        msra_init_(self)

    def stage_modules(self) -> list[nn.Module]:
        """[stem, layer1, layer2, ...]: what ``freeze_at`` counts (detectron2 semantics)."""
        return [nn.ModuleList([self.conv1, self.bn1])] + [getattr(self, n) for n in self.layer_names]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        outs: dict[str, Tensor] = {}
        for name in self.layer_names:
            x = getattr(self, name)(x)
            if LAYERS[name] in self.out_features:
                outs[LAYERS[name]] = x
        return outs


@register_backbone("resnet50vd")
def resnet50vd(norm: str, out_features: Sequence[str]) -> ResNetVD:
    return ResNetVD((3, 4, 6, 3), norm, out_features)
