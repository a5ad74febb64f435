"""SparseInst forward against the published equations, on tiny random-init models."""

import pytest
import torch
import torch.nn.functional as F

from edgeseg.config import BackboneConfig, ModelConfig
from edgeseg.models.sparseinst.config import DecoderConfig, EncoderConfig, SparseInstConfig
from edgeseg.models.registry import create_model
from edgeseg.models.deploy import DeployModel
from edgeseg.models.sparseinst.encoder import AdaptivePool


def tiny_config(decoder="GroupIAMDecoder", groups=4, separable=False, num_classes=3):
    return ModelConfig(
        num_classes=num_classes,
        backbone=BackboneConfig(name="resnet18", norm="FrozenBN", freeze_at=0),
        method=SparseInstConfig(
            encoder=EncoderConfig(num_channels=32, separable=separable),
            decoder=DecoderConfig(name=decoder, num_masks=6, kernel_dim=8, groups=groups, inst_dim=16,
                                  inst_convs=2, mask_dim=16, mask_convs=2, separable=separable)),
    )


def _reference_decoder(dec, feats, decoder_name, groups):
    """SparseInst decoder written from the paper's equations (linspace coordinates, einsum)."""
    b, _, h, w = feats.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    coords = torch.stack([xs, ys])[None].expand(b, 2, h, w)
    x = torch.cat([coords, feats], 1)

    def convs(seq, t):
        for layer in seq:
            if isinstance(layer, torch.nn.Conv2d):
                t = F.relu(F.conv2d(t, layer.weight, layer.bias, padding=1))
        return t

    br = dec.inst_branch
    f = convs(br.inst_convs, x)
    iam = F.conv2d(f, br.iam_conv.weight, br.iam_conv.bias, padding=1, groups=br.iam_conv.groups)
    a = iam.flatten(2)
    if decoder_name == "GroupIAMSoftDecoder":
        a = torch.softmax(a + br.softmax_bias, -1)  # A = softmax(IAM + b)
    else:
        a = a.sigmoid() / a.sigmoid().sum(-1, keepdim=True).clamp(min=1e-6)  # A = sigma / sum(sigma)
    z = torch.einsum("bnp,bcp->bnc", a, f.flatten(2))  # z_i = sum_p A_i(p) X(p)
    if groups > 1:
        n = z.shape[1] // groups
        z = torch.cat([z[:, g * n : (g + 1) * n] for g in range(groups)], -1)
        z = F.relu(F.linear(z, br.fc.weight, br.fc.bias))
    logits = F.linear(z, br.cls_score.weight, br.cls_score.bias)
    kernel = F.linear(z, br.mask_kernel.weight, br.mask_kernel.bias)
    obj = F.linear(z, br.objectness.weight, br.objectness.bias)
    mb = dec.mask_branch
    m = F.conv2d(convs(mb.mask_convs, x), mb.projection.weight, mb.projection.bias)
    masks = torch.einsum("bnk,bkhw->bnhw", kernel, m)
    masks = F.interpolate(masks, scale_factor=2.0, mode="bilinear", align_corners=False)
    return logits, masks, obj


@pytest.mark.parametrize("decoder,groups", [("BaseIAMDecoder", 1), ("GroupIAMDecoder", 4),
                                            ("GroupIAMDecoder", 2), ("GroupIAMSoftDecoder", 4)])
def test_decoder_matches_published_equations(decoder, groups):
    torch.manual_seed(0)
    model = create_model(tiny_config(decoder, groups)).eval()
    feats = torch.randn(2, 32, 8, 12)
    with torch.no_grad():
        out = model.decoder(feats)
        logits, masks, obj = _reference_decoder(model.decoder, feats, decoder, groups)
    torch.testing.assert_close(out["pred_logits"], logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["pred_masks"], masks, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["pred_scores"], obj, rtol=1e-4, atol=1e-5)
    assert out["pred_logits"].shape == (2, 6, 3) and out["pred_masks"].shape == (2, 6, 16, 24)


@pytest.mark.parametrize("hw", [(8, 8), (7, 10), (13, 5), (1, 3)])
def test_matrix_pool_equals_adaptive_pool(hw):
    x = torch.randn(2, 4, *hw, dtype=torch.float64)
    for size in (1, 2, 3, 6):
        pool = AdaptivePool(size)
        pool.for_export = True
        torch.testing.assert_close(pool(x), F.adaptive_avg_pool2d(x, size), rtol=0, atol=1e-12)


def test_export_forms_match_the_training_model():
    torch.manual_seed(0)
    a = create_model(tiny_config()).eval()
    b = create_model(tiny_config()).eval()
    b.load_state_dict(a.state_dict())
    deployed = DeployModel(b)  # switches the export-only forms (matrix pooling, explicit sigmoid)
    assert all(m.for_export for m in b.modules() if hasattr(m, "for_export"))
    assert deployed.output_names == ("scores", "masks")
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        want = a.deploy_outputs(a(x))
        got = deployed(x)
    for name, value in zip(deployed.output_names, got):
        torch.testing.assert_close(value, want[name], rtol=1e-5, atol=1e-5)


def test_stride_4_outputs_and_scores():
    model = create_model(tiny_config(separable=True)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
        deployed = model.deploy_outputs(out)
        scores, masks = deployed["scores"], deployed["masks"]
    assert masks.shape == (1, 6, 16, 24)
    expected = torch.sqrt(out["pred_logits"].sigmoid() * out["pred_scores"].sigmoid())
    torch.testing.assert_close(scores, expected)


def test_losses_are_finite_with_empty_targets_and_backpropagate():
    torch.manual_seed(0)
    model = create_model(tiny_config())
    out = model(torch.randn(2, 3, 64, 64))
    targets = [
        {"labels": torch.tensor([0, 2]), "masks": (torch.rand(2, 64, 64) > 0.5).to(torch.uint8)},
        {"labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)},
    ]
    losses = model.losses(out, targets)
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice", "loss_objectness"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.decoder.inst_branch.cls_score.weight.grad.abs().sum() > 0
