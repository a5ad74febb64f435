"""Free Mask (FreeSOLO, Wang et al., CVPR 2022): coarse instance masks from the self-similarity of
a backbone's features, with no annotation of any kind.

Written from the paper's description. A late feature map (res4 by default: the shapes' objects
are a few res5 cells wide), L2-normalised per location, is the keys; the same map pooled to
several scales (1, 1/2, 1/4) is the queries. Each query's cosine
similarity to every key, min-max normalised over the image, is a soft mask; its maskness is the
mean soft value inside its binary mask. Masks are ranked by maskness, Matrix NMS decays the
duplicates (the queries of one object all light up the same region), the best are kept and
filtered by maskness and size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.errors import EdgesegError
from edgeseg.models.backbones import create_backbone
from edgeseg.models.matrix_nms import matrix_nms
from edgeseg.preprocess import preprocess
from edgeseg.pseudo.labels import PseudoLabels


@dataclass
class FreeMaskConfig:
    # The backbone level whose features are compared. Measured on the shapes val split (ImageNet
    # MobileNetV2, class-agnostic mask AP50): res4 at 256 px 7.6, res5 at 512 px 0.9, res3 1.4.
    feature: str = "res4"
    size: int = 256  # images are resized so that their shorter side is this (longer at most 2x)
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25])  # query pooling
    threshold: float = 0.5  # soft mask -> binary mask
    top: int = 20  # masks kept per image after Matrix NMS
    min_maskness: float = 0.7
    min_area: float = 0.0005  # fraction of the image
    max_area: float = 0.3  # a mask over more of the image is background (AP50 7.6 against 5.0 at 0.9)
    nms_sigma: float = 2.0
    # Beyond the paper: each query keeps only the connected region of its mask around itself. A
    # query's similar pixels are every object that looks like it; on scenes of one repeated kind
    # (nuclei, parts on a belt) that is all of them at once, and only connectivity separates them.
    own_region: bool = False


def soft_masks(features: Tensor, scales: list[float]) -> Tensor:
    """Features [C, h, w] -> soft masks [Q, h, w] in [0, 1], one per query location over the scales."""
    keys = F.normalize(features, dim=0)
    queries = []
    for s in scales:
        pooled = keys[None] if s == 1 else F.interpolate(keys[None], scale_factor=s, mode="bilinear",
                                                        align_corners=False, antialias=True)
        queries.append(F.normalize(pooled[0].flatten(1), dim=0))
    sim = torch.cat(queries, 1).t() @ keys.flatten(1)  # [Q, h*w] cosine similarities
    low, high = sim.amin(1, keepdim=True), sim.amax(1, keepdim=True)
    return ((sim - low) / (high - low).clamp(min=1e-6)).reshape(-1, *features.shape[-2:])


def query_cells(hw: tuple[int, int], scales: list[float]) -> np.ndarray:
    """[Q, 2] (row, column) of the feature cell at each query's centre, in :func:`soft_masks` order."""
    h, w = hw
    cells = []
    for s in scales:
        ph, pw = (h, w) if s == 1 else (int(h * s), int(w * s))  # F.interpolate's floor(size * scale)
        rows = np.clip(((np.arange(ph) + 0.5) * h / ph).astype(int), 0, h - 1)
        cols = np.clip(((np.arange(pw) + 0.5) * w / pw).astype(int), 0, w - 1)
        cells.append(np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2))
    return np.concatenate(cells)


def own_regions(binary: Tensor, cells: np.ndarray) -> Tensor:
    """Binary masks [Q, h, w] -> per query the connected region (8-neighbours) that holds its
    centre cell, or nothing when the cell is not in its own mask."""
    import cv2

    out = torch.zeros_like(binary)
    planes = binary.numpy().astype(np.uint8)
    for q, (r, c) in enumerate(cells):
        if planes[q, r, c]:
            _, labels = cv2.connectedComponents(planes[q], connectivity=8)
            out[q] = torch.from_numpy(labels == labels[r, c])
    return out


def select(soft: Tensor, cfg: FreeMaskConfig) -> tuple[Tensor, Tensor]:
    """Soft masks [Q, h, w] -> the kept ones [K, h, w] and their scores [K], best first."""
    binary = (soft > cfg.threshold).to(soft.dtype)
    if cfg.own_region:
        binary = own_regions(binary, query_cells(soft.shape[-2:], cfg.scales))
        soft = soft * binary
    area = binary.sum((1, 2))
    maskness = (soft * binary).sum((1, 2)) / area.clamp(min=1)
    fraction = area / float(soft.shape[-2] * soft.shape[-1])
    ok = (maskness >= cfg.min_maskness) & (fraction >= cfg.min_area) & (fraction <= cfg.max_area)
    order = torch.argsort(torch.where(ok, maskness, torch.full_like(maskness, -1.0)), descending=True, stable=True)
    order = order[: int(ok.sum())]
    if len(order) == 0:
        return soft[:0], maskness[:0]
    decayed = matrix_nms(binary[order].flatten(1), torch.zeros_like(order), maskness[order], sigma=cfg.nms_sigma)
    best = torch.argsort(decayed, descending=True, stable=True)[: cfg.top]
    return soft[order[best]], decayed[best]


def to_image(soft: Tensor, feature_stride: int, resized_hw: tuple[int, int], original_hw: tuple[int, int],
             threshold: float) -> np.ndarray:
    """Soft masks [K, h, w] on the feature cells that cover the resized image -> binary masks
    [K, H, W] at the original image size."""
    if len(soft) == 0:
        return np.zeros((0, *original_hw), bool)
    full = F.interpolate(soft[None], scale_factor=float(feature_stride), mode="bilinear", align_corners=False)[0]
    full = full[:, : resized_hw[0], : resized_hw[1]]
    full = F.interpolate(full[None], size=original_hw, mode="bilinear", align_corners=False)[0]
    return (full > threshold).numpy()


def check_config(cfg: FreeMaskConfig) -> None:
    problems = [(not 0 < cfg.threshold < 1, "threshold must be in (0, 1)"), (cfg.top < 1, "top must be at least 1"),
                (not 0 <= cfg.min_maskness <= 1, "min-maskness must be in [0, 1]"),
                (not 0 < cfg.max_area <= 1, "max-area must be in (0, 1]"), (cfg.size < 32, "size must be at least 32"),
                (not cfg.scales or any(not 0 < s <= 1 for s in cfg.scales), "scales must be in (0, 1]")]
    for bad, what in problems:
        if bad:
            raise EdgesegError(f"freemask: {what}")


def backbone_for(name: str, weights: str, feature: str, seed: int = 0):
    """The feature extractor: ``weights`` is "random" (seeded), a built-in name ("imagenet") or a
    state-dict file (e.g. from ``edgeseg pretrain``)."""
    torch.manual_seed(seed)
    model = create_backbone(name, norm="FrozenBN", weights=None if weights == "random" else weights,
                            out_features=(feature,))
    return model.eval()


@torch.no_grad()
def image_masks(backbone, image: np.ndarray, cfg: FreeMaskConfig) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 image -> its free masks [K, H, W] (bool, original size) and scores [K]."""
    x, meta = preprocess(image, min_size=cfg.size, max_size=2 * cfg.size)
    stride = backbone.out_strides[cfg.feature]
    features = backbone(torch.from_numpy(x))[cfg.feature][0]
    valid = (-(-meta.resized_hw[0] // stride), -(-meta.resized_hw[1] // stride))
    soft, scores = select(soft_masks(features[:, : valid[0], : valid[1]], cfg.scales), cfg)
    return to_image(soft, stride, meta.resized_hw, meta.original_hw, cfg.threshold), scores.numpy()


def write_free_masks(source, out, cfg: FreeMaskConfig, backbone: str = "mobilenetv2", weights: str = "imagenet",
                     seed: int = 0, progress=None) -> dict:
    """Free masks of every image of ``source`` as a pseudo-label file ``out``
    (:class:`edgeseg.pseudo.labels.PseudoLabels`). Returns counts for the log."""
    check_config(cfg)
    labels = PseudoLabels(source, out, "free masks")
    model = backbone_for(backbone, weights, cfg.feature, seed)
    for k, (rec, image) in enumerate(labels):
        masks, scores = image_masks(model, image, cfg)
        labels.add(rec, image.shape[:2], masks, scores)
        if progress:
            progress(k + 1, len(labels.dataset.records))
    settings = {"method": "free masks", **asdict(cfg), "backbone": backbone, "weights": weights, "seed": seed,
                "source": str(source)}
    return labels.write("free masks written by edgeseg", settings)
