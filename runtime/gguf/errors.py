"""Exceptions of the GGUF reader and writer.

Every error a user can cause with a bad file or bad arguments is one of
these, so callers (the ``quantir`` command) can report it in one line.
"""

from __future__ import annotations

import os

from quantir.dialects.errors import QuantirError

__all__ = ["GGUFError", "GGUFFormatError", "QuantizeError", "UnsupportedTensorTypeError"]


class GGUFError(ValueError, QuantirError):
    """Base class of the GGUF errors; a ValueError so generic callers catch it."""


class GGUFFormatError(GGUFError):
    """A file is not a well-formed GGUF file (or not one quantir can read).

    ``path`` is the file, ``problem`` what is wrong with it; ``str()`` gives
    both ("model.gguf: file ends at byte 100, ...").
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsupportedTensorTypeError(GGUFError):
    """A tensor (or a requested type) uses a ggml type quantir cannot compute with.

    Such tensors are still listed by the reader; only using them raises this.
    """


class QuantizeError(GGUFError):
    """Converting float weights to a quantized GGUF file cannot proceed.

    For example: the input is already quantized, the quantizer is missing or
    returned data of the wrong shape, or the output would overwrite the input.
    """
