"""The exported graph of any method: normalised images -> its output kind's tensors, in order."""

from __future__ import annotations

from torch import nn

from edgeseg.models.registry import output_kind_of
from edgeseg.postprocess import output_kind


class DeployModel(nn.Module):
    """``forward(images)`` returns the tensors named by the method's output kind, in that order
    (batch first); the model's ``deploy_outputs(outputs) -> dict`` supplies them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.output_names = output_kind(output_kind_of(model.cfg)).outputs
        for layer in model.modules():  # the one switch to export-only forms (same numbers, portable ops)
            if hasattr(layer, "for_export"):
                layer.for_export = True

    def forward(self, images):
        outputs = self.model.deploy_outputs(self.model(images))
        return tuple(outputs[name] for name in self.output_names)
