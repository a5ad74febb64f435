"""Small building blocks of the SparseInst head: Caffe2-style inits and 3x3 conv stacks."""

from __future__ import annotations

from torch import nn


def c2_xavier_fill(module: nn.Module) -> None:
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


def c2_msra_fill(module: nn.Module) -> None:
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


class SeparableConv3x3(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1: the edge variant's replacement for a dense 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1),
        )
        for conv in self:
            c2_msra_fill(conv)


def conv3x3(in_channels: int, out_channels: int, separable: bool = False) -> nn.Module:
    if separable:
        return SeparableConv3x3(in_channels, out_channels)
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    c2_msra_fill(conv)
    return conv


def conv3x3_stack(num_convs: int, in_channels: int, out_channels: int, separable: bool = False) -> nn.Sequential:
    """conv-ReLU pairs; official key names are ``{0,2,4,6}.weight`` for the dense version."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [conv3x3(in_channels, out_channels, separable), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)
