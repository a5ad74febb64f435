"""An independent ResNet-50 forward, written from detectron2's ``modeling/backbone/resnet.py``.

Functional (no edgeseg modules): it reads a state dict with detectron2's key names and applies
BasicStem (7x7/2 conv + FrozenBN + ReLU, 3x3/2 max-pool with padding 1) and the stages res2..res5
of ``BottleneckBlock``: conv1 1x1 -> ReLU -> conv2 3x3 (padding 1) -> ReLU -> conv3 1x1, plus a
1x1 projection shortcut (with the block's stride) where in != out channels, then ReLU. With
``stride_in_1x1`` the block's stride sits on conv1, otherwise on conv2 (detectron2:
``stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)``). The first block of
res2 has stride 1, of res3..res5 stride 2. Every conv is bias-free and followed by FrozenBN
(eps 1e-5).
"""

import torch
import torch.nn.functional as F

STAGES = (("res2", 3, 64, 256, 1), ("res3", 4, 128, 512, 2), ("res4", 6, 256, 1024, 2),
          ("res5", 3, 512, 2048, 2))  # name, blocks, bottleneck channels, out channels, stride


def _conv_norm(state, prefix, x, stride=1, padding=0):
    x = F.conv2d(x, state[f"{prefix}.weight"], stride=stride, padding=padding)
    return F.batch_norm(x, state[f"{prefix}.norm.running_mean"], state[f"{prefix}.norm.running_var"],
                        state[f"{prefix}.norm.weight"], state[f"{prefix}.norm.bias"],
                        training=False, eps=1e-5)


def detectron2_resnet50(state: dict, x: torch.Tensor, stride_in_1x1: bool, prefix: str = "",
                        out_features=("res3", "res4", "res5")) -> dict:
    """Features of a detectron2 ResNet-50 with weights ``state`` (keys under ``prefix``)."""
    p = prefix
    x = F.relu(_conv_norm(state, f"{p}stem.conv1", x, stride=2, padding=3))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    outs = {}
    in_ch = 64
    for name, blocks, mid, out_ch, first_stride in STAGES:
        for b in range(blocks):
            stride = first_stride if b == 0 else 1
            s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
            q = f"{p}{name}.{b}"
            out = F.relu(_conv_norm(state, f"{q}.conv1", x, stride=s1))
            out = F.relu(_conv_norm(state, f"{q}.conv2", out, stride=s3, padding=1))
            out = _conv_norm(state, f"{q}.conv3", out)
            short = _conv_norm(state, f"{q}.shortcut", x, stride=stride) if in_ch != out_ch else x
            x = F.relu(out + short)
            in_ch = out_ch
        if name in out_features:
            outs[name] = x
    return outs


def random_official_state(shapes: dict, seed: int = 0) -> dict:
    """Random weights for the given key shapes, scaled so a deep ResNet neither explodes nor dies."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean") or key.endswith("bias"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:  # conv / linear weight: He-style fan-in scaling
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            t = torch.randn(shape, generator=g) * (1.0 / fan_in) ** 0.5
        else:  # norm weights and scalar parameters
            t = 0.5 + torch.rand(shape, generator=g)
        state[key] = t
    return state
