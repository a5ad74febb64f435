"""AdaMixer against its published equations, written here independently of edgeseg's modules
(the official 5-D layout, nn.MultiheadAttention with a 3-D additive mask, per-group sampling),
and the official checkpoint layout through `edgeseg import`."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from edgeseg.config import load_recipe
from edgeseg.models.registry import create_model

TINY = ["model.num_classes=5", "model.backbone.name=resnet18", "model.backbone.weights=",
        "model.adamixer.num_queries=7", "model.adamixer.num_stages=2", "model.adamixer.content_dim=32",
        "model.adamixer.feat_channels=32", "model.adamixer.heads=4", "model.adamixer.ffn_dim=48",
        "model.adamixer.in_points=6", "model.adamixer.out_points=5", "model.adamixer.groups=4",
        "model.adamixer.in_features=[res3,res4,res5]"]


def reference_stage(stage, features, strides, query, xyzr, groups, p_in, p_out, heads):
    """One decoder stage from the paper's equations, in the official code's tensor layout."""
    b, n, d = query.shape
    z, r = xyzr[..., 2:3], xyzr[..., 3:4]
    wh = torch.cat([2 ** z * 2 ** (-r / 2), 2 ** z * 2 ** (r / 2)], -1)
    boxes = torch.cat([xyzr[..., :2] - wh / 2, xyzr[..., :2] + wh / 2], -1)
    # log IoF bias: intersection over the area of the attending query's box, times a per-head tau
    lt = torch.max(boxes[:, :, None, :2], boxes[:, None, :, :2])
    rb = torch.min(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    iof = inter / area[:, :, None]
    bias = (torch.log(iof + 1e-7)[:, None] * stage.iof_tau.view(1, -1, 1, 1)).flatten(0, 1)
    # sinusoidal embedding of (x/1000, y/1000, z, r)
    per = d // 4
    dim_t = 10000 ** (2 * (torch.arange(per) // 2) / per)
    pos = (xyzr / torch.tensor([1000.0, 1000, 1, 1]))[..., None] / dim_t
    pe = torch.stack([pos[..., 0::2].sin(), pos[..., 1::2].cos()], dim=4).flatten(2)
    x = query + pe
    attn = stage.attention.attn(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), attn_mask=bias,
                                need_weights=False)[0].transpose(0, 1)
    x = stage.attention_norm(x + attn)
    # adaptive 3D sampling
    mix = stage.sampling_n_mixing
    off = mix.sampling_offset_generator[0](x).view(b, n, groups, p_in, 3)
    pts = xyzr[:, :, None, None, :2] + off[..., :2] * wh[:, :, None, None, :]
    pz = xyzr[:, :, None, None, 2] + off[..., 2]
    log_strides = torch.tensor([math.log2(s) for s in strides])
    lvl_w = torch.softmax(-((pz[..., None] - log_strides) ** 2) / 2.0, -1)  # [B, N, G, P, L]
    c = features[0].shape[1] // groups
    sampled = torch.zeros(b, n, groups, p_in, c)
    for level, (value, s) in enumerate(zip(features, strides)):
        h, w = value.shape[-2:]
        grid = pts / torch.tensor([w * s, h * s]) * 2 - 1
        for g in range(groups):
            got = F.grid_sample(value[:, g * c:(g + 1) * c], grid[:, :, g], align_corners=False)  # [B, c, N, P]
            sampled[:, :, g] += got.permute(0, 2, 3, 1) * lvl_w[:, :, g, :, level, None]
    # adaptive mixing
    am = mix.adaptive_mixing
    params = am.parameter_generator[0](x).view(b, n, groups, -1)
    m = params[..., : c * c].view(b, n, groups, c, c)
    s_mat = params[..., c * c:].view(b, n, groups, p_out, p_in)
    y = F.relu(F.layer_norm(sampled @ m, [p_in, c]))
    y = F.relu(F.layer_norm(s_mat @ y, [p_out, c]))
    x = mix.norm(x + am.out_proj(y.reshape(b, n, -1)))
    ffn = stage.ffn.layers
    x = stage.ffn_norm(x + ffn[1](F.relu(ffn[0][0](x))))
    cls = stage.fc_cls(F.relu(stage.cls_fcs[1](stage.cls_fcs[0](x))))
    delta = stage.fc_reg(F.relu(stage.reg_fcs[1](stage.reg_fcs[0](x))))
    new = torch.cat([xyzr[..., :2] + delta[..., :2] * 2 ** xyzr[..., 2:3], xyzr[..., 2:] + delta[..., 2:]], -1)
    return cls, new, x


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_stage_matches_the_published_equations():
    recipe = load_recipe("adamixer_r50_1x_coco", TINY)
    model = create_model(recipe.model).eval()
    stage = model.roi_head.bbox_head[0]
    _randomise(stage)
    g = torch.Generator().manual_seed(1)
    strides = [8, 16, 32]
    features = [torch.randn(2, 32, 128 // s, 160 // s, generator=g) for s in strides]
    query = torch.randn(2, 7, 32, generator=g)
    xy = torch.rand(2, 7, 2, generator=g) * torch.tensor([160.0, 128.0])
    zr = torch.stack([torch.rand(2, 7, generator=g) * 3 + 3, torch.rand(2, 7, generator=g) * 2 - 1], -1)
    xyzr = torch.cat([xy, zr], -1)
    with torch.no_grad():
        got = stage(features, strides, query, xyzr)
        want = reference_stage(stage, features, strides, query, xyzr, groups=4, p_in=6, p_out=5, heads=4)
    for a, b_ in zip(got, want):
        torch.testing.assert_close(a, b_, atol=1e-5, rtol=1e-5)


def test_initial_queries_cover_the_input_and_boxes_refine_from_them():
    recipe = load_recipe("adamixer_r50_1x_coco", TINY)
    model = create_model(recipe.model).eval()
    xyzr, content = model.rpn_head(torch.zeros(2, 3, 128, 160))
    torch.testing.assert_close(xyzr[0, 0], torch.tensor([80.0, 64.0, math.log2(math.sqrt(160 * 128)), math.log2(128 / 160)]))
    assert content.shape == (2, 7, 32)
    torch.testing.assert_close(content.mean(-1), torch.zeros(2, 7), atol=1e-5, rtol=0)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 160))
    # the box regressors start at zero: an untrained model's boxes are the whole input
    torch.testing.assert_close(out["boxes"][-1][0, 0], torch.tensor([0.0, 0.0, 160.0, 128.0]), atol=1e-3, rtol=0)


def test_training_reduces_the_loss_on_one_batch():
    recipe = load_recipe("adamixer_r50_1x_coco", TINY + ["model.adamixer.mask_head.enabled=true",
                                                         "model.adamixer.mask_head.channels=16",
                                                         "model.adamixer.mask_head.convs=1"])
    torch.manual_seed(0)
    model = create_model(recipe.model).train()
    images = torch.randn(2, 3, 128, 128)
    masks = torch.zeros(2, 128, 128, dtype=torch.uint8)
    masks[0, 20:60, 30:90] = 1
    masks[1, 70:120, 10:50] = 1
    targets = [{"labels": torch.tensor([1, 3]), "boxes": torch.tensor([[30.0, 20, 90, 60], [10, 70, 50, 120]]),
                "masks": masks},
               {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4),
                "masks": torch.zeros(0, 128, 128, dtype=torch.uint8)}]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    first = None
    for _ in range(15):
        losses = model.losses(model(images), targets)
        assert {"loss_mask", "loss_mask_dice", "s0.loss_cls", "s1.loss_giou"} <= set(losses)
        total = sum(losses.values())
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.7 * first


def test_official_r50_checkpoint_imports_strictly(tmp_path):
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.models.adamixer.convert import rename_backbone
    from edgeseg.workflows import import_official
    from tests.models.official_keys import adamixer_r50_1x

    layout = adamixer_r50_1x()
    recipe = load_recipe("adamixer_r50_1x_coco")
    ours = create_model(recipe.model).state_dict()
    renamed = {rename_backbone(k): v for k, v in layout.items() if not k.endswith("num_batches_tracked")}
    assert set(renamed) == set(ours)
    assert all(tuple(ours[k].shape) == shape for k, shape in renamed.items())

    g = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(5) if k.endswith("num_batches_tracked") else torch.randn(shape, generator=g))
             for k, shape in layout.items()}
    path = tmp_path / "adamixer_r50_1x_coco.pth"
    torch.save({"meta": {"CLASSES": ("person",) * 80, "epoch": 12}, "state_dict": state}, path)
    import_official(path, "adamixer_r50_1x", tmp_path / "imported.pt")
    model, loaded_recipe, names = load_model(tmp_path / "imported.pt")
    got = model.state_dict()
    assert loaded_recipe.model.name == "adamixer" and len(names) == 80
    assert torch.equal(got["backbone.res2.0.conv2.norm.running_mean"], state["backbone.layer1.0.bn2.running_mean"])
    assert torch.equal(got["backbone.res5.0.shortcut.weight"], state["backbone.layer4.0.downsample.0.weight"])
    key = "roi_head.bbox_head.5.sampling_n_mixing.adaptive_mixing.parameter_generator.0.weight"
    assert torch.equal(got[key], state[key])


def test_import_refuses_a_file_that_is_not_an_mmdet_checkpoint(tmp_path):
    from edgeseg.errors import EdgesegError
    from edgeseg.workflows import import_official

    path = tmp_path / "x.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, path)
    with pytest.raises(EdgesegError, match="not an mmdet checkpoint"):
        import_official(path, "adamixer_r50_1x", tmp_path / "out.pt")
    with pytest.raises(EdgesegError, match="unknown; valid: .*adamixer_r50_1x"):
        import_official(path, "nope", tmp_path / "out.pt")


def test_tflite_samples_with_matmuls_and_matches_pytorch(tmp_path):
    """litert-torch would lower grid_sample (3D sampling, RoIAlign) into GATHER_ND chains XNNPACK
    does not run (940 ms a frame); the export traces their MatMul form, with PyTorch's outputs."""
    from collections import Counter

    import numpy as np

    from edgeseg.engine.checkpoint import save_checkpoint
    from edgeseg.runtime import Predictor
    from tests.helpers import require
    from tests.test_cli import run_cli

    require("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    recipe = load_recipe("adamixer_shapes", TINY + ["model.num_classes=4", "model.adamixer.mask_head.enabled=true",
                                                    "model.adamixer.mask_head.channels=16", "model.adamixer.mask_head.convs=1"])
    torch.manual_seed(0)
    model = create_model(recipe.model).eval()
    with torch.no_grad():  # zero-initialised offsets would sample only box centres: move the points
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(tmp_path / "m.pt", model, recipe, ["circle", "triangle", "rectangle", "star"])
    # in a child process: litert-torch starts JAX threads, and later tests fork (peak-memory probes)
    done = run_cli("export", tmp_path / "m.pt", "--target", "tflite", "--imgsz", "128", "--out", tmp_path / "tfl")
    assert done.returncode == 0, done.stderr[-2000:]
    ops = Counter(o["op_name"] for o in Interpreter(str(next((tmp_path / "tfl").glob("*.tflite"))))._get_ops_details())
    assert ops["BATCH_MATMUL"] and not ops["GATHER_ND"] and not ops["SELECT_V2"], ops
    x = np.random.default_rng(0).standard_normal((1, 128, 128, 3)).astype(np.float32)
    got = Predictor(tmp_path / "tfl", threads=1).raw(x)
    with torch.no_grad():
        want = model.deploy_outputs(model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())))
    assert np.ptp(want["boxes"][0].numpy()) > 10  # boxes moved from the initial whole-image ones
    for key in ("scores", "boxes", "masks"):
        ref = want[key][0].numpy()
        assert np.abs(got[key] - ref).max() / (1 + np.abs(ref).max()) <= 1e-4, key
