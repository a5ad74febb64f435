"""Models. ``registry`` (torch-free) knows every method; ``create_model(cfg)`` builds one."""

from edgeseg.models.registry import METHODS, Method, create_model, get_method, register_method

__all__ = ["METHODS", "Method", "create_model", "get_method", "register_method"]
