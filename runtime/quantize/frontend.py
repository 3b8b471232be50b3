"""``quantize``: float weights -> packed GGUF blocks, byte-identical to ggml.

Input validation, the encoding table and the chunked walk over blocks live
here; the per-format arithmetic lives in ``legacy_quants`` and the
``kquants_*`` modules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quantir.dialects.encoding import PackedLayoutError, QuantizationEncoding

from .kquants_symmetric import quantize_q3_k, quantize_q6_k
from .kquants_with_min import quantize_q2_k, quantize_q4_k, quantize_q5_k
from .legacy_quants import (
    quantize_q4_0,
    quantize_q4_1,
    quantize_q5_0,
    quantize_q5_1,
    quantize_q8_0,
)

BlockQuantizer = Callable[[np.ndarray], np.ndarray]

_QUANTIZERS: dict[QuantizationEncoding, BlockQuantizer] = {
    QuantizationEncoding.Q4_0: quantize_q4_0,
    QuantizationEncoding.Q4_1: quantize_q4_1,
    QuantizationEncoding.Q5_0: quantize_q5_0,
    QuantizationEncoding.Q5_1: quantize_q5_1,
    QuantizationEncoding.Q8_0: quantize_q8_0,
    QuantizationEncoding.Q2_K: quantize_q2_k,
    QuantizationEncoding.Q3_K: quantize_q3_k,
    QuantizationEncoding.Q4_K: quantize_q4_k,
    QuantizationEncoding.Q5_K: quantize_q5_k,
    QuantizationEncoding.Q6_K: quantize_q6_k,
}

SUPPORTED_ENCODINGS: tuple[QuantizationEncoding, ...] = tuple(_QUANTIZERS)

# Float widths converted to float32 first, in either byte order (float16
# widens exactly; float64 rounds to nearest, which is how ggml's converters
# feed its quantizers).
_ACCEPTED_FLOAT_BYTES = (2, 4, 8)

# Weights per chunk: bounds the temporaries of the K-quant searches (a few
# dozen float32 arrays of this size) while keeping numpy's per-call overhead
# small next to the arithmetic.
CHUNK_ELEMENTS = 1 << 18


def _resolve_encoding(encoding: QuantizationEncoding | str) -> QuantizationEncoding:
    if isinstance(encoding, str):
        encoding = QuantizationEncoding.parse(encoding)
    elif not isinstance(encoding, QuantizationEncoding):
        raise TypeError(
            "quantize: encoding must be a QuantizationEncoding or its name, "
            f"got {type(encoding).__name__}"
        )
    if encoding is QuantizationEncoding.GPTQ:
        raise ValueError(
            "quantize: GPTQ is not a GGUF block format; its packing (qweight/qzeros/"
            "scales per group) depends on a QuantizationConfig and is not done here. "
            f"Supported: {', '.join(e.name for e in SUPPORTED_ENCODINGS)}"
        )
    if encoding not in _QUANTIZERS:
        raise ValueError(
            f"quantize: no quantizer for {encoding.name}; supported: "
            f"{', '.join(e.name for e in SUPPORTED_ENCODINGS)}"
        )
    return encoding


def _checked_weights(weights: np.ndarray, encoding: QuantizationEncoding) -> np.ndarray:
    if not isinstance(weights, np.ndarray):
        raise TypeError(f"quantize: weights must be a numpy.ndarray, got {type(weights).__name__}")
    if weights.dtype.kind != "f" or weights.dtype.itemsize not in _ACCEPTED_FLOAT_BYTES:
        raise ValueError(
            f"quantize: weights must be float32 (float16 and float64 are converted), "
            f"got dtype {weights.dtype}"
        )
    if weights.ndim == 0:
        raise ValueError("quantize: weights must have shape [..., K], got a 0-d array")
    k = weights.shape[-1]
    try:
        encoding.packed_row_bytes(k)
    except PackedLayoutError as e:
        raise ValueError(
            f"quantize: {encoding.name} packs rows in blocks of {e.multiple} weights: "
            f"K={k} (the last dimension) is not a multiple of {e.multiple}"
        ) from None
    return weights


def _raise_non_finite(blocks: np.ndarray, first_block: int, shape: tuple[int, ...]) -> None:
    """Name the first row (index over the leading dimensions) holding NaN/inf."""
    bad = int(np.flatnonzero(~np.isfinite(blocks))[0])
    flat = first_block * blocks.shape[1] + bad
    k = shape[-1]
    row = np.unravel_index(flat // k, shape[:-1]) if len(shape) > 1 else ()
    value = blocks.reshape(-1)[bad]
    where = f"weights row {tuple(int(i) for i in row)}" if row else "weights"
    raise ValueError(
        f"quantize: {where} has a non-finite value ({value}) at column {flat % k} "
        "(after conversion to float32); ggml would pack meaningless blocks, so it is refused"
    )


def quantize(encoding: QuantizationEncoding | str, weights: np.ndarray) -> np.ndarray:
    """Pack float weights [..., K] into GGUF blocks, byte-identical to ggml.

    Output: uint8 [..., K // elements_per_block * block_size], rows independent
    (gguf-py's ``ReaderTensor.data`` layout). A 1-D input is one row. The bytes
    equal ggml's ``quantize_row_X_ref`` (the reference quantizers, no
    importance matrix) for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
    Q5_K, Q6_K.

    float16 and float64 inputs are converted to float32 first (float64 rounds
    to nearest, as ggml's converters do); a non-contiguous input is copied
    once. Work proceeds in chunks of about ``CHUNK_ELEMENTS`` weights, so the
    temporaries stay small whatever the input size.

    Raises TypeError for a non-ndarray ``weights`` or an encoding of the
    wrong type; ValueError for an unknown encoding, GPTQ, a dtype other than
    float16/32/64, a 0-d array, K not a multiple of the block length, or a
    NaN/inf weight (the message names its row and column).
    """
    encoding = _resolve_encoding(encoding)
    weights = _checked_weights(weights, encoding)
    epb = encoding.elements_per_block
    quantize_blocks = _QUANTIZERS[encoding]
    shape = weights.shape

    blocks = weights.reshape(-1, epb)
    n_blocks = blocks.shape[0]
    packed = np.empty((n_blocks, encoding.block_size), dtype=np.uint8)
    chunk = max(1, CHUNK_ELEMENTS // epb)
    for start in range(0, n_blocks, chunk):
        # float64 beyond float32's range becomes inf here and is refused below.
        with np.errstate(over="ignore"):
            part = np.ascontiguousarray(blocks[start : start + chunk], dtype=np.float32)
        # min/max propagate NaN and expose inf, without a boolean temporary.
        if part.size and not (np.isfinite(part.min()) and np.isfinite(part.max())):
            _raise_non_finite(part, start, shape)
        # Extreme but finite weights (|x| near 1e38, subnormals) drive ggml's
        # float math through inf and NaN; that is its behaviour, reproduced on
        # purpose, so numpy's warnings about it are noise.
        with np.errstate(all="ignore"):
            packed[start : start + chunk] = quantize_blocks(part)
    return packed.reshape(*shape[:-1], encoding.packed_row_bytes(shape[-1]))
