"""SparseInst (Cheng et al., CVPR 2022): sparse instance activation for real-time segmentation."""

from edgeseg.models.sparseinst.model import SparseInst

__all__ = ["SparseInst"]
