"""AdaMixer (Gao et al., CVPR 2022): a query-based detector with adaptive 3D feature sampling and
adaptive mixing; with the optional RoI mask head, an instance segmenter."""

from edgeseg.models.adamixer.config import AdaMixerConfig
from edgeseg.models.registry import Int8Policy, Method, register_method

METHOD = register_method(Method(
    name="adamixer",
    config=AdaMixerConfig,
    model="edgeseg.models.adamixer.model:AdaMixer",
    output_kind=lambda c: "roi_masks" if c.mask_head.enabled else "boxes",
    supervision=lambda c: ("masks", "points") if c.mask_head.enabled else ("boxes",),
    # The decoder's Linear layers stay float: they generate the mixing matrices, sampling offsets
    # and box deltas, whose errors compound over the stages (OpenVINO INT8 of every weighted
    # layer dropped the shapes model's mask AP 48.98 -> 34.61); the convolutions (backbone, neck,
    # mask head) carry most of the compute and run in INT8.
    int8=Int8Policy(float_leading_layers=2, convolutions_only=True, float_ops=(
        "every Linear layer (attention, FFN, mixing-parameter and offset generators, heads), "
        "sigmoid/softmax, LayerNorms, activation MatMuls, sampling-point and box arithmetic, "
        "first two weighted layers")),
    importer="edgeseg.models.adamixer.convert",
))
