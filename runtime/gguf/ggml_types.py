"""Which ggml tensor types quantir understands, and how they map to its encodings.

ggml types fall in three groups here:

* block-quantized types quantir has a ``QuantizationEncoding`` for (Q4_0 ...
  Q6_K): the stored data is uint8 blocks;
* plain element types (F32, F16, BF16, F64, I8 ... I64): the stored data is
  an ordinary array; their encoding is None;
* everything else (IQ*, TQ*, Q8_1, Q8_K, MXFP4, ...): listed when reading a
  file, but any use raises ``UnsupportedTensorTypeError``.
"""

from __future__ import annotations

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.weight import DType
from quantir.runtime.gguf.errors import UnsupportedTensorTypeError

__all__ = [
    "PLAIN_TYPES",
    "QUANTIZED_TYPES",
    "bfloat16_to_float32",
    "block_shape",
    "encoding_for_ggml_type",
    "ggml_type_for_encoding",
    "ggml_type_from_id",
    "is_supported",
    "packed_row_bytes",
    "supported_type_names",
]

# The GGUF block formats quantir computes with. The enum member names match
# ggml's type names, which keeps the table honest.
QUANTIZED_TYPES: dict[GGMLQuantizationType, QuantizationEncoding] = {
    GGMLQuantizationType[enc.value]: enc for enc in QuantizationEncoding if enc.is_gguf
}
_TYPE_FOR_ENCODING = {enc: qtype for qtype, enc in QUANTIZED_TYPES.items()}

# Plain element types: ggml type -> (quantir DType, numpy dtype of the stored
# elements). BF16 is stored as its raw 16-bit pattern because numpy has no
# bfloat16.
PLAIN_TYPES: dict[GGMLQuantizationType, tuple[DType, np.dtype]] = {
    GGMLQuantizationType.F32: (DType.float32, np.dtype(np.float32)),
    GGMLQuantizationType.F16: (DType.float16, np.dtype(np.float16)),
    GGMLQuantizationType.BF16: (DType.bfloat16, np.dtype(np.uint16)),
    GGMLQuantizationType.F64: (DType.float64, np.dtype(np.float64)),
    GGMLQuantizationType.I8: (DType.int8, np.dtype(np.int8)),
    GGMLQuantizationType.I16: (DType.int16, np.dtype(np.int16)),
    GGMLQuantizationType.I32: (DType.int32, np.dtype(np.int32)),
    GGMLQuantizationType.I64: (DType.int64, np.dtype(np.int64)),
}


def supported_type_names() -> list[str]:
    """ggml type names quantir can use, quantized first (for error messages)."""
    return [t.name for t in QUANTIZED_TYPES] + [t.name for t in PLAIN_TYPES]


def is_supported(qtype: GGMLQuantizationType) -> bool:
    return qtype in QUANTIZED_TYPES or qtype in PLAIN_TYPES


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Raw bfloat16 bits (uint16) as float32: the top half of a float32, so exact."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def ggml_type_from_id(type_id: int) -> GGMLQuantizationType | None:
    """The ggml type with this numeric id, or None if gguf-py does not know it."""
    try:
        qtype = GGMLQuantizationType(type_id)
    except ValueError:
        return None
    # An id gguf-py names but has no block size for cannot be laid out.
    return qtype if qtype in GGML_QUANT_SIZES else None


def _unsupported(qtype: GGMLQuantizationType, what: str) -> UnsupportedTensorTypeError:
    return UnsupportedTensorTypeError(
        f"{what} has ggml type {qtype.name}, which quantir does not support; "
        f"supported types: {', '.join(supported_type_names())}"
    )


def encoding_for_ggml_type(
    qtype: GGMLQuantizationType | int, *, tensor_name: str | None = None
) -> QuantizationEncoding | None:
    """The quantir encoding of a ggml type: None for plain types (F32, F16, BF16, ...).

    Raises ``UnsupportedTensorTypeError`` for types quantir cannot compute
    with (IQ*, TQ*, Q8_1, Q8_K, MXFP4, ...); ``tensor_name`` is put in that
    message. An integer id gguf-py does not know is a ValueError.
    """
    if not isinstance(qtype, GGMLQuantizationType):
        known = ggml_type_from_id(int(qtype))
        if known is None:
            raise ValueError(f"unknown ggml type id {int(qtype)}")
        qtype = known
    if qtype in QUANTIZED_TYPES:
        return QUANTIZED_TYPES[qtype]
    if qtype in PLAIN_TYPES:
        return None
    what = f"tensor {tensor_name!r}" if tensor_name is not None else "this tensor"
    raise _unsupported(qtype, what)


def ggml_type_for_encoding(encoding: QuantizationEncoding) -> GGMLQuantizationType:
    """The ggml type that stores a GGUF encoding; GPTQ has none (ValueError)."""
    if not isinstance(encoding, QuantizationEncoding):
        raise TypeError(f"expected a QuantizationEncoding, got {encoding!r}")
    qtype = _TYPE_FOR_ENCODING.get(encoding)
    if qtype is None:
        raise ValueError(f"{encoding.name} is not a GGUF block format: it has no ggml type")
    return qtype


def block_shape(qtype: GGMLQuantizationType) -> tuple[int, int]:
    """(elements per block, bytes per block) of any ggml type gguf-py knows."""
    return GGML_QUANT_SIZES[qtype]


def packed_row_bytes(qtype: GGMLQuantizationType, row_elements: int) -> int:
    """Bytes of one stored row of row_elements; ValueError if not whole blocks."""
    elements, nbytes = GGML_QUANT_SIZES[qtype]
    if row_elements % elements:
        raise ValueError(
            f"{qtype.name} stores rows in blocks of {elements} elements: "
            f"a row of {row_elements} is not a multiple of {elements}"
        )
    return row_elements // elements * nbytes
