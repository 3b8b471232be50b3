"""Open GGUF files: metadata and memory-mapped tensors, through gguf-py.

``open_gguf`` first checks the file's structure (``validate.scan_gguf``),
then lets gguf-py's ``GGUFReader`` map it, and cross-checks the two. Tensor
data is never copied: ``GGUFTensor.data`` is gguf-py's view into the mapped
file.

Shapes: gguf-py (like ggml) lists ne0, the innermost dimension, first.
quantir's logical shape is row-major, [..., N, K]: the reverse. A quantized
2-D tensor of logical shape [N, K] has data uint8 [N, K // elements_per_block
* block_size], which is also quantir's packed ``Weight`` shape.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Self

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.gguf_reader import ReaderTensor

from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.weight import DeviceRef, DType, Weight
from quantir.runtime.gguf.errors import GGUFFormatError, UnsupportedTensorTypeError
from quantir.runtime.gguf.ggml_types import (
    PLAIN_TYPES,
    QUANTIZED_TYPES,
    bfloat16_to_float32,
    is_supported,
    supported_type_names,
)
from quantir.runtime.gguf.metadata import ReaderMetadata
from quantir.runtime.gguf.validate import GGUFLayout, scan_gguf

__all__ = ["GGUFModel", "GGUFTensor", "open_gguf"]

# gguf-py keeps the header's counts as pseudo-fields beside the real pairs.
_PSEUDO_FIELD_PREFIX = "GGUF."


class _MappedGGUFReader(GGUFReader):
    """gguf-py's reader over a plain ndarray view of its np.memmap.

    The mapping and every view of it stay zero-copy; only np.memmap's
    per-slice bookkeeping goes, which is most of gguf-py's parse time on
    files with large vocabularies (one slice per token: 10 s -> 3 s for
    430k strings).
    """

    @property
    def data(self) -> np.ndarray:
        return self._mapped

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._mapped = value.view(np.ndarray)


class GGUFTensor:
    """One tensor of an open GGUF file.

    ``shape`` is quantir's logical row-major shape; ``ne`` the stored ggml
    order. ``encoding`` is the QuantizationEncoding of a supported block type
    and None otherwise (plain types, and types quantir does not support:
    check ``is_supported``).
    """

    def __init__(self, model_path: str, reader_tensor: ReaderTensor) -> None:
        self._path = model_path
        self._rt = reader_tensor
        self.name: str = reader_tensor.name
        self.ggml_type: GGMLQuantizationType = GGMLQuantizationType(reader_tensor.tensor_type)
        self.ne: tuple[int, ...] = tuple(int(n) for n in reader_tensor.shape)
        self.shape: tuple[int, ...] = tuple(reversed(self.ne))
        self.nbytes: int = int(reader_tensor.n_bytes)
        self.n_elements: int = int(reader_tensor.n_elements)
        self.data_offset: int = int(reader_tensor.data_offset)  # from the start of the file

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
        data = self._rt.data
        if self.ggml_type is GGMLQuantizationType.BF16:
            # gguf-py treats BF16 like a block type (bytes); give it its elements.
            return data.view(np.uint16).reshape(self.shape)
        return data

    @property
    def raw_bytes(self) -> np.ndarray:
        """The stored bytes as a flat uint8 view, for any type (to copy them through)."""
        data = self._rt.data
        return data.reshape(-1).view(np.uint8)

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

    @property
    def reader_tensor(self) -> ReaderTensor:
        """gguf-py's own record of this tensor."""
        return self._rt

    def __repr__(self) -> str:
        kind = self.encoding.name if self.encoding is not None else self.type_name
        return f"GGUFTensor({self.name!r}, {kind}, shape={list(self.shape)}, nbytes={self.nbytes})"


class GGUFModel:
    """An open GGUF file: header facts, metadata and tensors (in file order)."""

    def __init__(self, path: str, layout: GGUFLayout, reader: GGUFReader) -> None:
        self.path = Path(path)
        self._layout = layout
        self._reader: GGUFReader | None = reader
        fields = {k: f for k, f in reader.fields.items() if not k.startswith(_PSEUDO_FIELD_PREFIX)}
        self.metadata = ReaderMetadata(fields, {kv.key: kv.element_type for kv in layout.kvs})
        self.tensors: tuple[GGUFTensor, ...] = tuple(
            GGUFTensor(str(path), t) for t in reader.tensors
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

    @property
    def reader(self) -> GGUFReader:
        """gguf-py's reader of this file."""
        if self._reader is None:
            raise ValueError(f"{self.path}: the GGUF file is closed")
        return self._reader

    def close(self) -> None:
        """Drop this object's references to the mapping (views handed out stay valid)."""
        self._reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GGUFModel({str(self.path)!r}, v{self.version}, arch={self.architecture!r}, "
            f"{len(self.tensors)} tensors)"
        )


def _cross_check(path: str, layout: GGUFLayout, reader: GGUFReader) -> None:
    """gguf-py and the scan must agree; a mismatch means one misread the file."""
    if len(reader.tensors) != len(layout.tensors):
        raise GGUFFormatError(
            path,
            f"gguf-py found {len(reader.tensors)} tensors, the header scan {len(layout.tensors)}",
        )
    for rt, info in zip(reader.tensors, layout.tensors, strict=True):
        expected = layout.data_offset + info.offset
        if rt.name != info.name or int(rt.data_offset) != expected or rt.n_bytes != info.nbytes:
            raise GGUFFormatError(
                path, f"gguf-py and the header scan disagree about tensor {info.name!r}"
            )


def open_gguf(path: str | os.PathLike[str]) -> GGUFModel:
    """Open a GGUF (v2 or v3, little-endian) file, memory-mapped.

    Raises GGUFFormatError (a ValueError) naming the file and the problem for
    anything that is not a well-formed GGUF file.
    """
    path = os.fspath(path)
    layout = scan_gguf(path)
    try:
        reader = _MappedGGUFReader(path, "r")
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, MemoryError) as e:
        # The scan should have caught it; still never let gguf-py's raw error out.
        raise GGUFFormatError(path, f"gguf-py could not read it: {e}") from e
    except OSError as e:
        raise GGUFFormatError(path, f"cannot read it: {e.strerror or e}") from e
    _cross_check(path, layout, reader)
    return GGUFModel(path, layout, reader)
