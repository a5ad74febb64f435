"""The torch-free device runtime: load any bundle and run it with the shared pre/postprocessing.

Needs numpy, OpenCV and the bundle's inference runtime only (onnxruntime, openvino,
ai-edge-litert or tensorrt). ``edgeseg.runtime`` must never import torch.
"""

from edgeseg.runtime.bundle import Bundle, read_bundle
from edgeseg.runtime.predictor import Predictor

__all__ = ["Bundle", "Predictor", "read_bundle"]
