"""One test over every registered method (as timm does for its models): build a tiny instance,
run it, export it to every installed format, check FP32 parity with PyTorch, and postprocess its
output kind. A new method adds its tiny settings to TINY; the first test fails until it does."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.models.registry import method_names, output_kind_of
from edgeseg.postprocess import Detections, output_kind
from tests.helpers import require, tiny_overrides

# Per method: the recipe to start from and --set overrides that make it tiny and fast.
TINY = {
    "sparseinst": ("sparseinst_shapes", []),
    "adamixer": ("adamixer_shapes", [
        "model.adamixer.num_queries=8", "model.adamixer.num_stages=2", "model.adamixer.content_dim=32",
        "model.adamixer.feat_channels=32", "model.adamixer.heads=4", "model.adamixer.ffn_dim=64",
        "model.adamixer.in_points=4", "model.adamixer.out_points=4", "model.adamixer.mask_head.channels=16",
        "model.adamixer.mask_head.convs=1"]),
    "transfiner": ("transfiner_thin_shapes", [
        "model.transfiner.num_queries=8", "model.transfiner.num_stages=2", "model.transfiner.content_dim=32",
        "model.transfiner.feat_channels=32", "model.transfiner.heads=4", "model.transfiner.ffn_dim=64",
        "model.transfiner.in_points=4", "model.transfiner.out_points=4", "model.transfiner.mask_head.channels=16",
        "model.transfiner.mask_head.convs=1", "model.transfiner.refine.refined=3", "model.transfiner.refine.dim=16",
        "model.transfiner.refine.ffn_dim=32", "model.transfiner.refine.layers=1", "model.transfiner.refine.cells=[8,4,2]",
        "model.transfiner.refine.incoherence_convs=1", "model.transfiner.refine.incoherence_channels=16",
        "model.transfiner.refine.fine_channels=8"]),
    "solov2": ("solov2_shapes", [
        "model.solov2.fpn_channels=16", "model.solov2.head_channels=16", "model.solov2.mask_channels=16",
        "model.solov2.kernel_dim=16", "model.solov2.norm_groups=4", "model.solov2.head_convs=1",
        "model.solov2.grids=[12,8,4]", "model.solov2.candidates=30"]),
}
FORMATS = [("onnx", "onnx"), ("openvino", "openvino"), ("jetson", "onnx")]  # target, module that must import


def test_every_registered_method_has_tiny_settings():
    assert sorted(TINY) == method_names()


@pytest.fixture(scope="module", params=sorted(TINY))
def method_checkpoint(request, tmp_path_factory):
    """A tiny untrained instance of the method, saved as an edgeseg checkpoint."""
    import torch

    from edgeseg.config import load_recipe
    from edgeseg.engine.checkpoint import save_checkpoint
    from edgeseg.models.registry import create_model
    from tests.helpers import tiny_shapes

    root = tmp_path_factory.mktemp(request.param)
    data = tiny_shapes(root / "shapes")
    base, extra = TINY[request.param]
    # the shared tiny settings, less other methods' sections
    shared = [s for s in tiny_overrides(data, root / "run")
              if not s.startswith("model.") or s.startswith(("model.backbone.", f"model.{request.param}."))]
    recipe = load_recipe(base, shared + extra)
    torch.manual_seed(0)
    model = create_model(recipe.model).eval()
    path = root / "model.pt"
    save_checkpoint(path, model, recipe, ["circle", "triangle", "rectangle", "star"])
    return request.param, path


def test_forward_and_postprocess_of_its_kind(method_checkpoint):
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.predictor import load_predictor

    name, path = method_checkpoint
    model, _, _ = load_model(path)
    kind = output_kind(output_kind_of(model.cfg))
    predictor = load_predictor(path)
    image = np.random.default_rng(0).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    x, meta = predictor.prepare(image)
    outputs = predictor.raw(x)
    assert sorted(outputs) == sorted(kind.outputs) and outputs["scores"].shape[-1] == 4
    dets = predictor.finish(outputs, meta)
    assert isinstance(dets, Detections) and dets.boxes.shape == (len(dets), 4)
    assert (dets.masks is not None) == kind.masks
    if kind.masks:
        assert dets.masks.shape[1:] == (90, 150)


@pytest.mark.parametrize("target, module", FORMATS)
def test_export_and_fp32_parity(method_checkpoint, target, module, tmp_path):
    import torch

    from edgeseg.engine.checkpoint import load_model
    from edgeseg.export import export_bundle
    from edgeseg.runtime import Predictor, read_bundle

    require(module)
    name, path = method_checkpoint
    out = tmp_path / target
    export_bundle(path, target, out, precision="fp32", imgsz="128", log=lambda *_: None)
    bundle = read_bundle(out)
    model, _, _ = load_model(path)
    kind = output_kind(output_kind_of(model.cfg))
    assert bundle.outputs["kind"] == kind.name and bundle.outputs["names"] == list(kind.outputs)
    predictor = Predictor(out, backend="onnxruntime" if bundle.backend == "tensorrt" else None)
    sizes = [(128, 128), (96, 160)] if bundle.dynamic else [(128, 128)]
    for h, w in sizes:
        x = np.random.default_rng(h).standard_normal((1, 3, h, w)).astype(np.float32)
        got = predictor.raw(x)
        with torch.no_grad():
            want = {k: v[0].numpy() for k, v in model.deploy_outputs(model(torch.from_numpy(x))).items()}
        for key in kind.outputs:
            assert got[key].shape == want[key].shape, key
            assert np.abs(got[key] - want[key]).max() / (1 + np.abs(want[key]).max()) <= 1e-4, key


def test_every_mask_method_trains_from_points(method_checkpoint, tmp_path):
    """PointSup is a supervision, not a network: a method that declares points trains from them,
    and a few steps on one batch fit them (which methods declare them: test_point_sup.py)."""
    import torch

    from edgeseg.data.coco import CocoDataset
    from edgeseg.data.points import write_point_annotations
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.engine.data import TrainStream, collate
    from edgeseg.models.registry import supervision_of
    from tests.helpers import tiny_shapes

    name, path = method_checkpoint
    model, recipe, _ = load_model(path)
    if "points" not in supervision_of(model.cfg):
        pytest.skip(f"{name} does not train from points (supervision {supervision_of(model.cfg)})")
    data = tiny_shapes(tmp_path / "shapes")
    points = write_point_annotations(data / "train", tmp_path / "p20.json", 20)[0]
    stream = TrainStream(CocoDataset(points), recipe.data, seed=0)
    images, targets = collate([stream[0], stream[1]])
    assert "masks" not in targets[0] and targets[0]["points"].shape[1:] == (20, 2)
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(20):
        losses = model.losses(model(images), targets)
        if first is None:
            first = {k: v.item() for k, v in losses.items()}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    # measured: SparseInst 6.93 -> 4.60, AdaMixer's RoI head 0.693 -> 0.620 (it starts at a near-zero predictor)
    assert "loss_mask" in losses and losses["loss_mask"].item() < 0.95 * first["loss_mask"], (first, losses)


def test_a_training_step_under_bf16_autocast(method_checkpoint, tmp_path):
    """`solver.amp: auto` trains in bf16 autocast on AMX/AVX512-BF16 CPUs: the forward runs under
    autocast and the losses outside it, as in `edgeseg train`, so every method must accept bf16
    features where its losses sample or match them."""
    import torch

    from edgeseg.data.coco import CocoDataset
    from edgeseg.engine.checkpoint import load_model
    from edgeseg.engine.data import TrainStream, collate
    from tests.helpers import tiny_shapes

    name, path = method_checkpoint
    model, recipe, _ = load_model(path)
    data = tiny_shapes(tmp_path / "shapes")
    stream = TrainStream(CocoDataset(data / "train" / "annotations.json"), recipe.data, seed=0)
    images, targets = collate([stream[0], stream[1]])
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(images)
    losses = model.losses(outputs, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values()), losses
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
