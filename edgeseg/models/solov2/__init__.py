"""SOLOv2 (Wang et al., NeurIPS 2020): segmenting objects by locations with dynamic kernels and
Matrix NMS; the student of FreeSOLO (CVPR 2022)."""

from edgeseg.models.registry import Int8Policy, Method, register_method
from edgeseg.models.solov2.config import SOLOv2Config

METHOD = register_method(Method(
    name="solov2",
    config=SOLOv2Config,
    model="edgeseg.models.solov2.model:SOLOv2",
    output_kind="query_masks",
    supervision=("masks", "points"),
    int8=Int8Policy(float_leading_layers=2, float_ops=(
        "sigmoid, GroupNorms, resizes to the grids, the dynamic-kernel MatMul, maskness, Matrix NMS, "
        "first two weighted layers")),
))
