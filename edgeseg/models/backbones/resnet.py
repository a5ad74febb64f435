"""ResNet-18/50 with detectron2 parameter names, so detectron2/SparseInst checkpoints load as-is."""

from collections.abc import Callable, Sequence
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.models.backbones import FEATURE_STRIDES, register_backbone
from edgeseg.models.layers import Conv2d, get_norm, msra_init_

STAGES = ("res2", "res3", "res4", "res5")


class BasicStem(nn.Module):
    """7x7/2 conv + norm + ReLU, then 3x3/2 max-pool (stride 4 overall)."""

    def __init__(self, norm: str, out_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = Conv2d(3, out_channels, 7, stride=2, padding=3, bias=False,
                            norm=get_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2, padding=1)


def _shortcut(in_ch: int, out_ch: int, stride: int, norm: str) -> Conv2d | None:
    if in_ch == out_ch:
        return None
    return Conv2d(in_ch, out_ch, 1, stride=stride, bias=False, norm=get_norm(norm, out_ch))


class BasicBlock(nn.Module):
    """Two 3x3 convs (stride on the first) plus identity or projection shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str) -> None:
        super().__init__()
        self.shortcut = _shortcut(in_ch, out_ch, stride, norm)
        self.conv1 = Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False,
                            norm=get_norm(norm, out_ch))
        self.conv2 = Conv2d(out_ch, out_ch, 3, padding=1, bias=False, norm=get_norm(norm, out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 with the stride on the 3x3 conv, or on the first 1x1 if ``stride_in_1x1``.

    detectron2's ``STRIDE_IN_1X1``: True for the original MSRA weights, False (stride on the 3x3)
    for torchvision-style weights, which SparseInst uses (``Base-SparseInst.yaml``).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        mid = out_ch // 4
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.shortcut = _shortcut(in_ch, out_ch, stride, norm)
        self.conv1 = Conv2d(in_ch, mid, 1, stride=stride_1x1, bias=False, norm=get_norm(norm, mid))
        self.conv2 = Conv2d(mid, mid, 3, stride=stride_3x3, padding=1, bias=False,
                            norm=get_norm(norm, mid))
        self.conv3 = Conv2d(mid, out_ch, 1, bias=False, norm=get_norm(norm, out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """Stem + stages res2..resN; stages past the deepest requested feature are not built."""

    def __init__(self, block: Callable[[int, int, int, str], nn.Module], depths: Sequence[int],
                 widths: Sequence[int], norm: str, out_features: Sequence[str]) -> None:
        super().__init__()
        self.stem = BasicStem(norm)
        self.out_features = tuple(out_features)
        self.stage_names = STAGES[: max(STAGES.index(f) for f in out_features) + 1]
        in_ch = 64
        for i, name in enumerate(self.stage_names):
            stride = 1 if i == 0 else 2
            blocks = [block(in_ch if j == 0 else widths[i], widths[i], stride if j == 0 else 1, norm)
                      for j in range(depths[i])]
            self.add_module(name, nn.Sequential(*blocks))
            in_ch = widths[i]
        self.out_channels = {f: widths[STAGES.index(f)] for f in self.out_features}
        self.out_strides = {f: FEATURE_STRIDES[f] for f in self.out_features}
        self.ignored_weight_prefixes = tuple(f"{s}." for s in STAGES if s not in self.stage_names)
        msra_init_(self)

    def stage_modules(self) -> list[nn.Module]:
        """[stem, res2, res3, ...]: what ``freeze_at`` counts (detectron2 semantics)."""
        return [self.stem] + [getattr(self, name) for name in self.stage_names]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        outs: dict[str, Tensor] = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.out_features:
                outs[name] = x
        return outs


@register_backbone("resnet50")
def resnet50(norm: str, out_features: Sequence[str], stride_in_1x1: bool = False) -> ResNet:
    block = partial(BottleneckBlock, stride_in_1x1=stride_in_1x1)
    return ResNet(block, (3, 4, 6, 3), (256, 512, 1024, 2048), norm, out_features)


@register_backbone("resnet18")
def resnet18(norm: str, out_features: Sequence[str]) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), norm, out_features)
