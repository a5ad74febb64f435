"""PyTorch predictor: the same preprocessing and postprocessing every runtime uses."""

from __future__ import annotations

import numpy as np
import torch

from edgeseg.config import Recipe
from edgeseg.postprocess import Detections, postprocess
from edgeseg.preprocess import preprocess


class TorchPredictor:
    def __init__(self, model, recipe: Recipe, class_names, amp_dtype: torch.dtype | None = None):
        self.model = model.eval()
        self.recipe = recipe
        self.class_names = list(class_names)
        self.amp_dtype = amp_dtype
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network input [1,3,H,W] -> (scores [N,C], mask logits [N,H/4,W/4]) as float32 numpy."""
        images = torch.from_numpy(x).to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            scores, masks = self.model.scores_and_masks(self.model(images))
        return scores[0].float().cpu().numpy(), masks[0].float().cpu().numpy()

    def prepare(self, image: np.ndarray, name: str = "image"):
        data = self.recipe.data
        return preprocess(image, data.min_size_test, data.max_size_test, name=name)

    def finish(self, scores: np.ndarray, masks: np.ndarray, meta) -> Detections:
        inf = self.recipe.model.inference
        return postprocess(scores, masks, meta, inf.cls_threshold, inf.mask_threshold, inf.max_detections)

    def __call__(self, image: np.ndarray, name: str = "image") -> Detections:
        x, meta = self.prepare(image, name)
        return self.finish(*self.raw(x), meta)
