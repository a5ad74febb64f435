"""edgeseg: train CVPR 2022 instance-segmentation models and ship them to edge devices.

Importing this package (and ``edgeseg.runtime``) must never import torch: device runtimes
install numpy, OpenCV and their inference runtime only.
"""

__version__ = "0.1.0"
