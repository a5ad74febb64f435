"""AdaMixer (Gao et al., CVPR 2022): a query-based detector with adaptive 3D feature sampling and
adaptive mixing; with the optional RoI mask head, an instance segmenter."""

from edgeseg.models.adamixer.config import AdaMixerConfig
from edgeseg.models.registry import Int8Policy, Method, register_method

METHOD = register_method(Method(
    name="adamixer",
    config=AdaMixerConfig,
    model="edgeseg.models.adamixer.model:AdaMixer",
    output_kind=lambda c: "roi_masks" if c.mask_head.enabled else "boxes",
    supervision=lambda c: ("masks",) if c.mask_head.enabled else ("boxes",),
    int8=Int8Policy(float_leading_layers=2, float_ops=(
        "sigmoid/softmax, LayerNorms, activation MatMuls (attention, generated channel/spatial "
        "mixing), sampling-point and box arithmetic, first two weighted layers")),
    importer="edgeseg.models.adamixer.convert",
))
