"""Open GGUF files: metadata and memory-mapped tensors, parsed lazily.

``open_gguf`` maps the file and parses its header, metadata layout and
tensor table straight from the mapping (``validate.scan_buffer``: every read
bounds-checked). Metadata values are decoded when asked (``ReaderMetadata``);
opening a file with a quarter-million-token vocabulary costs one pass over
the string lengths and no Python object per token. Tensor data is never
copied: ``GGUFTensor.data`` is a numpy view into the mapped file.

gguf-py's ``GGUFReader`` is the reference this reader is tested against
(tests/runtime/test_gguf_lazy_reader.py); it is not used to read.

Shapes: gguf-py (like ggml) lists ne0, the innermost dimension, first.
quantir's logical shape is row-major, [..., N, K]: the reverse. A quantized
2-D tensor of logical shape [N, K] has data uint8 [N, K // elements_per_block
* block_size], which is also quantir's packed ``Weight`` shape.
"""

from __future__ import annotations

import math
import mmap
import os
from collections import Counter
from pathlib import Path
from typing import Self

import numpy as np
from gguf import GGMLQuantizationType

from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.weight import DeviceRef, DType, Weight
from quantir.runtime.gguf.errors import UnsupportedTensorTypeError
from quantir.runtime.gguf.ggml_types import (
    PLAIN_TYPES,
    QUANTIZED_TYPES,
    bfloat16_to_float32,
    block_shape,
    is_supported,
    supported_type_names,
)
from quantir.runtime.gguf.metadata import ReaderMetadata
from quantir.runtime.gguf.validate import GGUFLayout, TensorInfo, map_gguf, scan_buffer

__all__ = ["GGUFModel", "GGUFTensor", "open_gguf"]

# The element type of the stored data as gguf-py's reader gives it; every
# other type (block types, BF16) is bytes, [..., rows, row_bytes].
_ELEMENT_DTYPES = {
    GGMLQuantizationType.F16: np.dtype("<f2"),
    GGMLQuantizationType.F32: np.dtype("<f4"),
    GGMLQuantizationType.F64: np.dtype("<f8"),
    GGMLQuantizationType.I8: np.dtype("<i1"),
    GGMLQuantizationType.I16: np.dtype("<i2"),
    GGMLQuantizationType.I32: np.dtype("<i4"),
    GGMLQuantizationType.I64: np.dtype("<i8"),
}


class GGUFTensor:
    """One tensor of an open GGUF file.

    ``shape`` is quantir's logical row-major shape; ``ne`` the stored ggml
    order. ``encoding`` is the QuantizationEncoding of a supported block type
    and None otherwise (plain types, and types quantir does not support:
    check ``is_supported``).
    """

    def __init__(self, model_path: str, file_bytes: np.ndarray, info: TensorInfo, base: int):
        self._path = model_path
        self._file_bytes = file_bytes  # uint8 view of the whole mapping
        self.name: str = info.name
        self.ggml_type: GGMLQuantizationType = GGMLQuantizationType(info.type_id)
        self.ne: tuple[int, ...] = info.ne
        self.shape: tuple[int, ...] = tuple(reversed(self.ne))
        self.nbytes: int = info.nbytes
        self.n_elements: int = math.prod(info.ne)
        self.data_offset: int = base + info.offset  # from the start of the file

    @property
    def type_name(self) -> str:
        """ggml's name of the stored type ("Q4_K", "F32", "IQ2_XXS")."""
        return self.ggml_type.name

    @property
    def is_supported(self) -> bool:
        return is_supported(self.ggml_type)

    @property
    def is_quantized(self) -> bool:
        """True for block types, supported or not."""
        return self.ggml_type not in PLAIN_TYPES

    @property
    def encoding(self) -> QuantizationEncoding | None:
        return QUANTIZED_TYPES.get(self.ggml_type)

    def _require_supported(self, use: str) -> None:
        if not self.is_supported:
            raise UnsupportedTensorTypeError(
                f"{self._path}: cannot {use} tensor {self.name!r}: its ggml type "
                f"{self.type_name} is not supported by quantir; supported types: "
                f"{', '.join(supported_type_names())}"
            )

    @property
    def data(self) -> np.ndarray:
        """The stored data, memory-mapped (read-only, never copied).

        Quantized: gguf-py's uint8 view [..., rows, row_bytes]. Plain types: a
        typed array of the logical shape (BF16 as its raw uint16 bits).
        Raises UnsupportedTensorTypeError for types quantir does not support.
        """
        self._require_supported("use the data of")
        raw = self.raw_bytes
        if self.ggml_type is GGMLQuantizationType.BF16:
            return raw.view(np.uint16).reshape(self.shape)
        dtype = _ELEMENT_DTYPES.get(self.ggml_type)
        if dtype is not None:
            return raw.view(dtype).reshape(self.shape)
        elements, block_bytes = block_shape(self.ggml_type)
        return raw.reshape(*self.shape[:-1], self.shape[-1] // elements * block_bytes)

    @property
    def raw_bytes(self) -> np.ndarray:
        """The stored bytes as a flat uint8 view, for any type (to copy them through)."""
        return self._file_bytes[self.data_offset : self.data_offset + self.nbytes]

    def to_float32(self) -> np.ndarray:
        """The values as a new float32 array of the logical shape (dequantized if needed).

        Quantized tensors go through ``gguf.quants.dequantize``, which matches
        ggml's C dequantizers bit for bit.
        """
        self._require_supported("convert")
        data = self.data
        if self.ggml_type is GGMLQuantizationType.BF16:
            return bfloat16_to_float32(data)
        if self.ggml_type in PLAIN_TYPES:
            return data.astype(np.float32)
        from gguf.quants import dequantize

        return dequantize(np.asarray(data), self.ggml_type).reshape(self.shape)

    def as_weight(self, device: DeviceRef | None = None) -> Weight:
        """A quantir ``Weight`` describing this tensor.

        Quantized tensors must be 2-D ([N, K]); the Weight is uint8 with this
        encoding. Plain tensors give a Weight of their element type.
        """
        self._require_supported("make a Weight of")
        if self.ggml_type in PLAIN_TYPES:
            dtype, _ = PLAIN_TYPES[self.ggml_type]
            return Weight(self.name, dtype, self.shape, device)
        if len(self.shape) != 2:
            raise ValueError(
                f"{self._path}: tensor {self.name!r} has shape {list(self.shape)}: a "
                f"quantized Weight needs a 2-D [N, K] tensor"
            )
        return Weight(
            self.name, DType.uint8, self.shape, device, quantization_encoding=self.encoding
        )

    def __repr__(self) -> str:
        kind = self.encoding.name if self.encoding is not None else self.type_name
        return f"GGUFTensor({self.name!r}, {kind}, shape={list(self.shape)}, nbytes={self.nbytes})"


class GGUFModel:
    """An open GGUF file: header facts, metadata and tensors (in file order)."""

    def __init__(self, path: str, layout: GGUFLayout, mapping: mmap.mmap) -> None:
        self.path = Path(path)
        self._layout = layout
        self._mapping: mmap.mmap | None = mapping
        self.metadata = ReaderMetadata(mapping, layout.kvs)
        file_bytes = np.frombuffer(mapping, np.uint8)
        self.tensors: tuple[GGUFTensor, ...] = tuple(
            GGUFTensor(str(path), file_bytes, info, layout.data_offset) for info in layout.tensors
        )
        self._by_name = {t.name: t for t in self.tensors}

    version = property(lambda self: self._layout.version, doc="GGUF format version (2 or 3).")
    alignment = property(lambda self: self._layout.alignment, doc="Data alignment in bytes.")
    data_offset = property(
        lambda self: self._layout.data_offset, doc="File offset of the tensor data section."
    )
    file_size = property(lambda self: self._layout.file_size, doc="Size of the file in bytes.")

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def total_tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def type_counts(self) -> dict[str, int]:
        """Number of tensors of each ggml type name, most common first."""
        return dict(Counter(t.type_name for t in self.tensors).most_common())

    def tensor(self, name: str) -> GGUFTensor:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def close(self) -> None:
        """Drop this object's reference to the mapping.

        Views handed out (tensor data, metadata) keep it alive and valid; the
        file is unmapped once the last of them goes.
        """
        self._mapping = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GGUFModel({str(self.path)!r}, v{self.version}, arch={self.architecture!r}, "
            f"{len(self.tensors)} tensors)"
        )


def open_gguf(path: str | os.PathLike[str]) -> GGUFModel:
    """Open a GGUF (v2 or v3, little-endian) file, memory-mapped.

    Raises GGUFFormatError (a ValueError) naming the file and the problem for
    anything that is not a well-formed GGUF file.
    """
    path = os.fspath(path)
    mapping = map_gguf(path)
    try:
        layout = scan_buffer(mapping, path)
    except BaseException:
        mapping.close()
        raise
    return GGUFModel(path, layout, mapping)
