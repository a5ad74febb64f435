"""Models (PyTorch): ``create_model(cfg)`` builds any registered method from its typed config."""

from edgeseg.models.registry import DeployModel, create_model, register_model

__all__ = ["DeployModel", "create_model", "register_model"]
