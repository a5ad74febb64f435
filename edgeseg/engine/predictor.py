"""PyTorch predictor: the same preprocessing and postprocessing (by output kind) every runtime uses."""

from __future__ import annotations

import numpy as np
import torch

from edgeseg.config import Recipe
from edgeseg.models.registry import output_kind_of
from edgeseg.postprocess import Detections, check_score, output_kind, postprocess
from edgeseg.preprocess import preprocess


class TorchPredictor:
    def __init__(self, model, recipe: Recipe, class_names, amp_dtype: torch.dtype | None = None,
                 score: float | None = None):
        self.model = model.eval()
        self.recipe = recipe
        self.class_names = list(class_names)
        self.amp_dtype = amp_dtype
        self.device = next(model.parameters()).device
        self.kind = output_kind(output_kind_of(recipe.model))
        self.thresholds = vars(recipe.model.inference)
        self.score = check_score(self.thresholds["score_threshold"] if score is None else score)

    @torch.no_grad()
    def raw(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Network input [1,3,H,W] -> the output kind's arrays by name (batch item 0, float32)."""
        images = torch.from_numpy(x).to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            outputs = self.model.deploy_outputs(self.model(images))
        return {name: t[0].float().cpu().numpy() for name, t in outputs.items()}

    def prepare(self, image: np.ndarray, name: str = "image"):
        data = self.recipe.data
        return preprocess(image, data.min_size_test, data.max_size_test, name=name)

    def finish(self, outputs: dict, meta, score: float | None = None) -> Detections:
        return postprocess(self.kind.name, outputs, meta, self.thresholds, self.score if score is None else score)

    def __call__(self, image: np.ndarray, name: str = "image", score: float | None = None) -> Detections:
        x, meta = self.prepare(image, name)
        return self.finish(self.raw(x), meta, score)
