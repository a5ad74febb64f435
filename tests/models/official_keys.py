"""Official SparseInst checkpoint layouts, enumerated independently of edgeseg's modules.

Written from the detectron2 ResNet, timm resnet50d and hustvl/SparseInst module definitions,
so a test can check our state dicts against them key by key and shape by shape.
"""

FROZEN_BN = ("weight", "bias", "running_mean", "running_var")


def _norm(prefix, channels):
    return {f"{prefix}.{k}": (channels,) for k in FROZEN_BN}


def detectron2_r50():
    keys = {"backbone.stem.conv1.weight": (64, 3, 7, 7), **_norm("backbone.stem.conv1.norm", 64)}
    in_ch = 64
    for stage, (blocks, width) in zip(("res2", "res3", "res4", "res5"), ((3, 64), (4, 128), (6, 256), (3, 512))):
        out = width * 4
        for b in range(blocks):
            p = f"backbone.{stage}.{b}"
            if b == 0:
                keys[f"{p}.shortcut.weight"] = (out, in_ch, 1, 1)
                keys.update(_norm(f"{p}.shortcut.norm", out))
            keys[f"{p}.conv1.weight"] = (width, in_ch if b == 0 else out, 1, 1)
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys[f"{p}.conv3.weight"] = (out, width, 1, 1)
            for conv, ch in (("conv1", width), ("conv2", width), ("conv3", out)):
                keys.update(_norm(f"{p}.{conv}.norm", ch))
        in_ch = out
    return keys


def timm_r50vd():
    keys = {
        "backbone.conv1.0.weight": (32, 3, 3, 3), **_norm("backbone.conv1.1", 32),
        "backbone.conv1.3.weight": (32, 32, 3, 3), **_norm("backbone.conv1.4", 32),
        "backbone.conv1.6.weight": (64, 32, 3, 3), **_norm("backbone.bn1", 64),
    }
    in_ch = 64
    for i, (blocks, planes) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=1):
        out = planes * 4
        for b in range(blocks):
            p = f"backbone.layer{i}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, in_ch if b == 0 else out, 1, 1)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys[f"{p}.conv3.weight"] = (out, planes, 1, 1)
            for bn, ch in (("bn1", planes), ("bn2", planes), ("bn3", out)):
                keys.update(_norm(f"{p}.{bn}", ch))
            if b == 0:
                keys[f"{p}.downsample.1.weight"] = (out, in_ch, 1, 1)
                keys.update(_norm(f"{p}.downsample.2", out))
        in_ch = out
    return keys


def sparseinst_head(decoder: str, num_classes=80, groups=4, masks=100, dim=256, kernel=128):
    keys = {}
    for i, c in enumerate((2048, 1024, 512)):
        keys[f"encoder.fpn_laterals.{i}.weight"] = (dim, c, 1, 1)
        keys[f"encoder.fpn_laterals.{i}.bias"] = (dim,)
        keys[f"encoder.fpn_outputs.{i}.weight"] = (dim, dim, 3, 3)
        keys[f"encoder.fpn_outputs.{i}.bias"] = (dim,)
    for i in range(4):
        keys[f"encoder.ppm.stages.{i}.1.weight"] = (dim // 4, dim, 1, 1)
        keys[f"encoder.ppm.stages.{i}.1.bias"] = (dim // 4,)
    keys["encoder.ppm.bottleneck.weight"] = (dim, dim * 2, 1, 1)
    keys["encoder.ppm.bottleneck.bias"] = (dim,)
    keys["encoder.fusion.weight"] = (dim, dim * 3, 1, 1)
    keys["encoder.fusion.bias"] = (dim,)
    for branch, convs in (("inst_branch", "inst_convs"), ("mask_branch", "mask_convs")):
        for j, idx in enumerate((0, 2, 4, 6)):
            keys[f"decoder.{branch}.{convs}.{idx}.weight"] = (dim, dim + 2 if j == 0 else dim, 3, 3)
            keys[f"decoder.{branch}.{convs}.{idx}.bias"] = (dim,)
    g = 1 if decoder == "BaseIAMDecoder" else groups
    width = dim * g
    p = "decoder.inst_branch"
    keys[f"{p}.iam_conv.weight"] = (masks * g, dim // g, 3, 3)
    keys[f"{p}.iam_conv.bias"] = (masks * g,)
    if g > 1:
        keys[f"{p}.fc.weight"] = (width, width)
        keys[f"{p}.fc.bias"] = (width,)
    keys[f"{p}.cls_score.weight"] = (num_classes, width)
    keys[f"{p}.cls_score.bias"] = (num_classes,)
    keys[f"{p}.mask_kernel.weight"] = (kernel, width)
    keys[f"{p}.mask_kernel.bias"] = (kernel,)
    keys[f"{p}.objectness.weight"] = (1, width)
    keys[f"{p}.objectness.bias"] = (1,)
    if decoder == "GroupIAMSoftDecoder":
        keys[f"{p}.softmax_bias"] = (1,)
    keys["decoder.mask_branch.projection.weight"] = (kernel, dim, 1, 1)
    keys["decoder.mask_branch.projection.bias"] = (kernel,)
    return keys


OFFICIAL = {
    "r50_giam": lambda: {**detectron2_r50(), **sparseinst_head("GroupIAMDecoder")},
    "r50vd_giam": lambda: {**timm_r50vd(), **sparseinst_head("GroupIAMDecoder")},
    "r50_iam": lambda: {**detectron2_r50(), **sparseinst_head("BaseIAMDecoder")},
    "r50_giam_soft": lambda: {**detectron2_r50(), **sparseinst_head("GroupIAMSoftDecoder")},
}


def torchvision_r50(prefix="backbone"):
    """mmdet's ResNet-50 (style 'pytorch', torchvision names) with BatchNorm statistics."""
    def bn(p, ch):
        return {f"{p}.{k}": (ch,) for k in FROZEN_BN} | {f"{p}.num_batches_tracked": ()}

    keys = {f"{prefix}.conv1.weight": (64, 3, 7, 7), **bn(f"{prefix}.bn1", 64)}
    in_ch = 64
    for i, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=1):
        out = width * 4
        for b in range(blocks):
            p = f"{prefix}.layer{i}.{b}"
            keys[f"{p}.conv1.weight"] = (width, in_ch if b == 0 else out, 1, 1)
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys[f"{p}.conv3.weight"] = (out, width, 1, 1)
            keys.update(bn(f"{p}.bn1", width) | bn(f"{p}.bn2", width) | bn(f"{p}.bn3", out))
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (out, in_ch, 1, 1)
                keys.update(bn(f"{p}.downsample.1", out))
        in_ch = out
    return keys


def adamixer_r50_1x(classes=80, queries=100, stages=6, d=256, heads=8, ffn=2048, groups=4, p_in=32, p_out=128):
    """MCG-NJU/AdaMixer ``adamixer_r50_1x_coco.py``: mmdet ResNet-50, ChannelMapping neck,
    InitialQueryGenerator, 6 AdaMixerDecoderStage (mmcv MultiheadAttention / FFN naming)."""
    keys = torchvision_r50()
    for i, ch in enumerate((256, 512, 1024, 2048)):
        keys[f"neck.lateral_convs.{i}.conv.weight"] = (d, ch, 1, 1)
        keys[f"neck.lateral_convs.{i}.conv.bias"] = (d,)
    keys |= {"neck.gn_out.weight": (d,), "neck.gn_out.bias": (d,),
             "rpn_head.init_proposal_bboxes.weight": (queries, 4),
             "rpn_head.init_content_features.weight": (queries, d)}
    c = d // groups
    for s in range(stages):
        p = f"roi_head.bbox_head.{s}"
        linear = {
            "attention.attn.out_proj": (d, d), "ffn.layers.0.0": (ffn, d), "ffn.layers.1": (d, ffn),
            "cls_fcs.0": (d, d), "reg_fcs.0": (d, d), "fc_cls": (classes, d), "fc_reg": (4, d),
            "sampling_n_mixing.sampling_offset_generator.0": (groups * p_in * 3, d),
            "sampling_n_mixing.adaptive_mixing.parameter_generator.0": (groups * (c * c + p_in * p_out), d),
            "sampling_n_mixing.adaptive_mixing.out_proj": (d, c * p_out * groups),
        }
        for name, (o, i_) in linear.items():
            keys[f"{p}.{name}.weight"] = (o, i_)
            keys[f"{p}.{name}.bias"] = (o,)
        for norm in ("attention_norm", "ffn_norm", "cls_fcs.1", "reg_fcs.1", "sampling_n_mixing.norm"):
            keys[f"{p}.{norm}.weight"] = (d,)
            keys[f"{p}.{norm}.bias"] = (d,)
        keys[f"{p}.attention.attn.in_proj_weight"] = (3 * d, d)
        keys[f"{p}.attention.attn.in_proj_bias"] = (3 * d,)
        keys[f"{p}.iof_tau"] = (heads,)
    return keys
