"""Write GGUF files through gguf-py's ``GGUFWriter``, atomically and streaming.

Tensors are described by ``TensorToWrite``: a name, a type (a GGUF
``QuantizationEncoding``, a plain dtype, or any ggml type for raw bytes), the
LOGICAL row-major shape, and the data (or a function computing it, called
when that tensor is written, so a converter holds one tensor in memory at a
time). Quantized data is the packed uint8 array [..., rows, row_bytes], the
same shape gguf-py's reader gives back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.weight import DType
from quantir.runtime.atomic import atomic_output_path
from quantir.runtime.gguf.ggml_types import (
    PLAIN_TYPES,
    ggml_type_for_encoding,
    packed_row_bytes,
)
from quantir.runtime.gguf.metadata import MetadataValue, infer_metadata_value
from quantir.runtime.gguf.validate import MAX_DIMS

__all__ = ["MAX_TENSOR_NAME_BYTES", "ProgressCallback", "TensorToWrite", "write_gguf"]

# ggml's GGML_MAX_NAME is 64 including the terminating NUL: llama.cpp refuses
# to load longer names, so refuse to write them.
MAX_TENSOR_NAME_BYTES = 63

TensorType = QuantizationEncoding | GGMLQuantizationType | DType | np.dtype | type
ProgressCallback = Callable[[int, int, "str | None"], None]
"""progress(bytes_done, bytes_total, name): before each tensor, and with None at the end."""

_PLAIN_BY_DTYPE = {dtype: qtype for qtype, (dtype, _) in PLAIN_TYPES.items()}


@dataclass(frozen=True)
class TensorToWrite:
    """One tensor for ``write_gguf``.

    type: a GGUF QuantizationEncoding (data: uint8 [..., rows, K/epb*bytes]),
    a quantir DType or numpy dtype of a plain type (data: that dtype, the
    logical shape; bfloat16 data is its raw uint16 bits), or a
    GGMLQuantizationType (block types: raw uint8 bytes as for encodings,
    which also copies types quantir cannot compute with).
    """

    name: str
    type: TensorType
    shape: tuple[int, ...]
    data: np.ndarray | Callable[[], np.ndarray]

    def __post_init__(self) -> None:
        # Accept any sequence (a list, a numpy shape); _check_spec validates it.
        if isinstance(self.shape, (list, np.ndarray)):
            object.__setattr__(self, "shape", tuple(self.shape))

    def ggml_type(self) -> GGMLQuantizationType:
        return _ggml_type_of(self.name, self.type)

    def stored_shape(self) -> tuple[int, ...]:
        """Shape the data must have: packed rows for block types, else the logical shape."""
        qtype = self.ggml_type()
        if qtype in PLAIN_TYPES:
            return self.shape
        try:
            row_bytes = packed_row_bytes(qtype, self.shape[-1])
        except ValueError as e:
            raise ValueError(f"tensor {self.name!r} of shape {list(self.shape)}: {e}") from None
        return (*self.shape[:-1], row_bytes)

    def stored_dtype(self) -> np.dtype:
        qtype = self.ggml_type()
        return PLAIN_TYPES[qtype][1] if qtype in PLAIN_TYPES else np.dtype(np.uint8)

    def nbytes(self) -> int:
        return int(np.prod(self.stored_shape(), dtype=object)) * self.stored_dtype().itemsize


def _ggml_type_of(name: str, kind: Any) -> GGMLQuantizationType:
    if isinstance(kind, GGMLQuantizationType):
        return kind
    if isinstance(kind, QuantizationEncoding):
        try:
            return ggml_type_for_encoding(kind)
        except ValueError as e:
            raise ValueError(f"tensor {name!r}: {e}") from None
    if not isinstance(kind, DType):
        try:
            kind = DType.from_numpy(kind)
        except (TypeError, ValueError):
            raise ValueError(
                f"tensor {name!r}: type must be a QuantizationEncoding, GGMLQuantizationType, "
                f"DType or numpy dtype, got {kind!r}"
            ) from None
    qtype = _PLAIN_BY_DTYPE.get(kind)
    if qtype is None:
        plain = ", ".join(d.name for d in _PLAIN_BY_DTYPE)
        raise ValueError(f"tensor {name!r}: GGUF cannot store {kind.name}; plain types: {plain}")
    return qtype


def _check_spec(spec: TensorToWrite, seen: set[str]) -> None:
    if not isinstance(spec, TensorToWrite):
        raise TypeError(f"tensors must be TensorToWrite records, got {spec!r}")
    name = spec.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"tensor names must be non-empty strings, got {name!r}")
    if len(name.encode("utf-8")) > MAX_TENSOR_NAME_BYTES:
        raise ValueError(
            f"tensor name {name!r} is longer than {MAX_TENSOR_NAME_BYTES} bytes (ggml's limit)"
        )
    if name in seen:
        raise ValueError(f"tensor name {name!r} is used twice")
    seen.add(name)
    shape = spec.shape
    if (
        not isinstance(shape, tuple)
        or not 1 <= len(shape) <= MAX_DIMS
        or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0 for d in shape)
    ):
        raise ValueError(
            f"tensor {name!r}: shape must be a tuple of 1 to {MAX_DIMS} positive ints, "
            f"got {shape!r}"
        )
    spec.stored_shape()  # checks the type and that rows are whole blocks


def _resolve_data(spec: TensorToWrite) -> np.ndarray:
    data = spec.data() if callable(spec.data) else spec.data
    if not isinstance(data, np.ndarray):
        raise TypeError(f"tensor {spec.name!r}: data must be a numpy array, got {type(data)}")
    expected_shape, expected_dtype = spec.stored_shape(), spec.stored_dtype()
    if data.dtype != expected_dtype or data.shape != expected_shape:
        raise ValueError(
            f"tensor {spec.name!r} ({spec.ggml_type().name}, logical shape "
            f"{list(spec.shape)}): expected data {expected_dtype} {list(expected_shape)}, "
            f"got {data.dtype} {list(data.shape)}"
        )
    return np.ascontiguousarray(data)


def _metadata_values(
    metadata: Mapping[str, Any] | None, arch: str | None
) -> tuple[str, dict[str, MetadataValue], int | None]:
    values: dict[str, MetadataValue] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metadata keys must be non-empty strings, got {key!r}")
        values[key] = infer_metadata_value(key, value)
    meta_arch = values.pop("general.architecture", None)
    if meta_arch is not None and meta_arch.type is not GGUFValueType.STRING:
        raise ValueError("metadata 'general.architecture' must be a string")
    if arch is None:
        if meta_arch is None:
            raise ValueError(
                "write_gguf needs an architecture: pass arch= or metadata['general.architecture']"
            )
        arch = meta_arch.value
    elif meta_arch is not None and meta_arch.value != arch:
        raise ValueError(
            f"arch={arch!r} contradicts metadata['general.architecture']={meta_arch.value!r}"
        )
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"the architecture must be a non-empty string, got {arch!r}")
    alignment = None  # gguf-py's default (32), and no general.alignment key
    align_value = values.pop("general.alignment", None)
    if align_value is not None:
        alignment = align_value.value
        if (
            align_value.type is not GGUFValueType.UINT32
            or alignment <= 0
            or alignment & (alignment - 1)
        ):
            raise ValueError(
                f"metadata 'general.alignment' must be a UINT32 power of two, got {alignment!r}"
            )
    return arch, values, alignment


def write_gguf(
    path: str | os.PathLike[str],
    tensors: Iterable[TensorToWrite],
    metadata: Mapping[str, Any] | None = None,
    arch: str | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> None:
    """Write a GGUF v3 file atomically (a temporary file renamed over ``path``).

    metadata: key -> value; plain Python values get the types described in
    ``infer_metadata_value``; wrap a value in ``MetadataValue`` to choose its
    GGUF type. ``arch`` sets general.architecture (taken from metadata when
    None). A 'general.alignment' entry sets the data alignment.

    Everything is checked before the file is created; on any failure
    (including KeyboardInterrupt) no partial file is left and an existing
    ``path`` is untouched.
    """
    specs = list(tensors)
    seen: set[str] = set()
    for spec in specs:
        _check_spec(spec, seen)
    arch, values, alignment = _metadata_values(metadata, arch)
    total = sum(spec.nbytes() for spec in specs)

    with atomic_output_path(path) as tmp:
        writer = GGUFWriter(None, arch)
        try:
            if alignment is not None:
                writer.add_custom_alignment(alignment)
            for key, mv in values.items():
                writer.add_key_value(key, mv.encoded(), mv.type, mv.element_type)
            for spec in specs:
                # gguf-py turns a uint8 byte shape of a block type back into
                # the logical shape; other dtypes keep the shape given.
                writer.add_tensor_info(
                    spec.name,
                    spec.stored_shape(),
                    spec.stored_dtype(),
                    spec.nbytes(),
                    raw_dtype=spec.ggml_type(),
                )
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            done = 0
            for spec in specs:
                if progress is not None:
                    progress(done, total, spec.name)
                writer.write_tensor_data(_resolve_data(spec))
                done += spec.nbytes()
            if not specs:
                # gguf-py pads the data section only when it writes a tensor.
                writer.write_padding(writer.fout[0], writer.fout[0].tell())
            writer.flush()
        finally:
            writer.close()
        if progress is not None:
            progress(total, total, None)
