"""SparseInst (Cheng et al., CVPR 2022): sparse instance activation for real-time segmentation."""

from edgeseg.models.registry import Int8Policy, Method, register_method
from edgeseg.models.sparseinst.config import SparseInstConfig

METHOD = register_method(Method(
    name="sparseinst",
    config=SparseInstConfig,
    model="edgeseg.models.sparseinst.model:SparseInst",
    output_kind="query_masks",
    supervision=("masks", "points"),
    int8=Int8Policy(float_leading_layers=2, float_ops=(
        "sigmoid/softmax, IAM normalisation, activation MatMuls (IAM pooling, mask product, PPM), "
        "score product/sqrt, mask resize, first two weighted layers")),
    importer="edgeseg.models.sparseinst.convert",
))
