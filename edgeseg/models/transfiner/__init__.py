"""Mask Transfiner (Ke et al., CVPR 2022): coarse RoI masks refined only at their incoherent
regions by a transformer over a quadtree of points, here as a static graph (fixed top-R
instances, fixed node counts by TopK) on top of AdaMixer's detector and 28x28 mask head."""

from edgeseg.models.registry import Int8Policy, Method, register_method
from edgeseg.models.transfiner.config import TransfinerConfig

METHOD = register_method(Method(
    name="transfiner",
    config=TransfinerConfig,
    model="edgeseg.models.transfiner.model:MaskTransfiner",
    output_kind="roi_masks",
    supervision=("masks",),
    # AdaMixer's policy (its decoder's Linear layers float); the refiner is Linear layers and
    # attention: it stays float with them, the convolutions (backbone, neck, heads, stem) run INT8.
    int8=Int8Policy(float_leading_layers=2, convolutions_only=True, float_ops=(
        "every Linear layer (AdaMixer's decoder, the refinement transformer and pixel decoder), "
        "sigmoid/softmax, LayerNorms, activation MatMuls, sampling-point, box and node arithmetic, "
        "first two weighted layers")),
))
