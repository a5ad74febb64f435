"""Converters and quantizers print progress bars, per-op warnings and size reports; an export
says what it did in one line of its own. Errors still surface: as exceptions, not output."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

NOISY_LOGGERS = ("torch.onnx", "nncf", "absl", "onnxruntime")


@contextlib.contextmanager
def quiet():
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
