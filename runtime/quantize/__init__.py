"""Float weights -> packed GGUF blocks, byte-identical to ggml's reference quantizers.

``quantize(encoding, weights)`` packs float32 (float16/float64 are converted)
weights of shape [..., K] into uint8 [..., K // elements_per_block *
block_size], the bytes ggml's ``quantize_row_X_ref`` writes (no importance
matrix) for every encoding in ``SUPPORTED_ENCODINGS``: Q4_0, Q4_1, Q5_0,
Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Vectorized with numpy over whole
chunks of blocks.
"""

import sys
import types

from .frontend import CHUNK_ELEMENTS, SUPPORTED_ENCODINGS, quantize

__all__ = ["CHUNK_ELEMENTS", "SUPPORTED_ENCODINGS", "quantize"]


class _CallableModule(types.ModuleType):
    """This package, callable as its `quantize` function.

    `from quantir.runtime import quantize` must give the function, but once
    this subpackage is imported Python binds the name `quantize` in
    quantir.runtime to the subpackage itself; calling it calls the function.
    """

    def __call__(self, *args, **kwargs):
        return quantize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
