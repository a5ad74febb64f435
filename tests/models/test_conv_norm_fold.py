"""Training folds FrozenBatchNorm2d into the conv before it: same outputs and gradients as the
plain modules that evaluation and export run."""

import torch
from torch import nn

from edgeseg.models.backbones.mobilenetv2 import MobileNetV2
from edgeseg.models.layers import ConvNormSequential, FrozenBatchNorm2d


def _randomize_frozen_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            for buf in (m.weight, m.bias, m.running_mean):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def test_folded_forward_and_gradients_match_the_plain_modules():
    torch.manual_seed(0)
    model = MobileNetV2("FrozenBN", ["res3", "res4"])
    _randomize_frozen_bn(model)
    x = torch.randn(2, 3, 64, 64)
    outs, grads = [], []
    for train in (True, False):  # train folds; eval runs conv, then x * scale + shift
        model.zero_grad()
        model.train(train)
        out = model(x)
        sum((v * torch.linspace(-1, 1, v.numel()).view_as(v)).sum() for v in out.values()).backward()
        outs.append({k: v.detach() for k, v in out.items()})
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for k in outs[0]:
        torch.testing.assert_close(outs[0][k], outs[1][k], rtol=1e-4, atol=1e-4)
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-3, atol=1e-4)


def test_fold_keeps_plain_sequential_key_names_and_other_modules():
    seq = ConvNormSequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), FrozenBatchNorm2d(4), nn.ReLU6())
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    _randomize_frozen_bn(seq)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(seq.train()(x), seq.eval()(x), rtol=1e-5, atol=1e-5)
    plain = ConvNormSequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()  # trainable BN: not folded
    assert plain(x).shape == (1, 4, 8, 8) and plain[1].num_batches_tracked == 1
