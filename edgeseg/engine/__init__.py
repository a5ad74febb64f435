"""Training, evaluation and prediction loops (PyTorch side)."""
