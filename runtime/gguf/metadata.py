"""GGUF metadata (key/value pairs): Python values with their GGUF types.

Reading gives plain Python values (int, float, bool, str, list), decoded
from the memory-mapped file when asked (``ReaderMetadata``; ``MetadataArray``
for an array left undecoded); the GGUF type of each value is kept beside it
(``MetadataValue``) so that a file can be rewritten with exactly the types it
had: llama.cpp checks them (most of its hyper-parameters must be UINT32,
token types INT32).

Strings are UTF-8. Bytes that are not valid UTF-8 (seen in some tokenizer
vocabularies) decode as lone surrogates ("surrogateescape") and encode back
to the same bytes, so no value is lost on a round trip.
"""

from __future__ import annotations

import operator
import struct
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf import GGUFValueType

from quantir.runtime.gguf.validate import KVInfo, skip_strings

__all__ = [
    "MetadataArray",
    "MetadataValue",
    "ReaderMetadata",
    "decode_metadata_value",
    "infer_metadata_value",
]

# What a file's metadata is read from: the read-only mapping (or bytes).
Buffer = Any

_INT_RANGES = {
    GGUFValueType.UINT8: (0, 1 << 8),
    GGUFValueType.INT8: (-(1 << 7), 1 << 7),
    GGUFValueType.UINT16: (0, 1 << 16),
    GGUFValueType.INT16: (-(1 << 15), 1 << 15),
    GGUFValueType.UINT32: (0, 1 << 32),
    GGUFValueType.INT32: (-(1 << 31), 1 << 31),
    GGUFValueType.UINT64: (0, 1 << 64),
    GGUFValueType.INT64: (-(1 << 63), 1 << 63),
}
_FLOAT_TYPES = (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64)
_NUMPY_TYPES = {
    np.dtype(np.uint8): GGUFValueType.UINT8,
    np.dtype(np.int8): GGUFValueType.INT8,
    np.dtype(np.uint16): GGUFValueType.UINT16,
    np.dtype(np.int16): GGUFValueType.INT16,
    np.dtype(np.uint32): GGUFValueType.UINT32,
    np.dtype(np.int32): GGUFValueType.INT32,
    np.dtype(np.uint64): GGUFValueType.UINT64,
    np.dtype(np.int64): GGUFValueType.INT64,
    np.dtype(np.float32): GGUFValueType.FLOAT32,
    np.dtype(np.float64): GGUFValueType.FLOAT64,
    np.dtype(np.bool_): GGUFValueType.BOOL,
}


@dataclass(frozen=True)
class MetadataValue:
    """A metadata value with its GGUF type (and element type for arrays)."""

    value: Any
    type: GGUFValueType
    element_type: GGUFValueType | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, GGUFValueType):
            raise TypeError(f"MetadataValue.type must be a GGUFValueType, got {self.type!r}")
        if (self.type is GGUFValueType.ARRAY) != (self.element_type is not None):
            raise ValueError("MetadataValue.element_type is required for arrays and only for them")
        if self.element_type is GGUFValueType.ARRAY:
            raise ValueError("GGUF metadata arrays of arrays are not supported")

    def checked(self, key: str) -> MetadataValue:
        """Check that the value fits its type; ValueError naming the key if not."""
        if self.type is GGUFValueType.ARRAY:
            if isinstance(self.value, (str, bytes)) or not isinstance(self.value, Sequence):
                raise ValueError(f"metadata {key!r}: an ARRAY value must be a list")
            if len(self.value) == 0:
                raise ValueError(
                    f"metadata {key!r}: empty arrays cannot be written (gguf-py refuses them)"
                )
            for i, item in enumerate(self.value):
                _check_scalar(f"{key!r}[{i}]", item, self.element_type)  # type: ignore[arg-type]
        else:
            _check_scalar(repr(key), self.value, self.type)
        return self

    def encoded(self) -> Any:
        """The value as gguf-py's writer packs it (strings as UTF-8 bytes)."""
        if self.type is GGUFValueType.ARRAY:
            return [_encode_scalar(v, self.element_type) for v in self.value]  # type: ignore[arg-type]
        return _encode_scalar(self.value, self.type)


def _check_scalar(what: str, value: Any, vtype: GGUFValueType) -> None:
    if vtype is GGUFValueType.STRING:
        if not isinstance(value, str):
            raise ValueError(f"metadata {what}: STRING value must be a str, got {value!r}")
    elif vtype is GGUFValueType.BOOL:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"metadata {what}: BOOL value must be a bool, got {value!r}")
    elif vtype in _FLOAT_TYPES:
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise ValueError(f"metadata {what}: {vtype.name} value must be a number, got {value!r}")
    elif vtype in _INT_RANGES:
        lo, hi = _INT_RANGES[vtype]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"metadata {what}: {vtype.name} value must be an int, got {value!r}")
        if not lo <= int(value) < hi:
            raise ValueError(f"metadata {what}: {value} does not fit in {vtype.name}")
    else:
        raise ValueError(f"metadata {what}: cannot store a value of type {vtype.name}")


def _encode_scalar(value: Any, vtype: GGUFValueType) -> Any:
    if vtype is GGUFValueType.STRING:
        return value.encode("utf-8", "surrogateescape")
    if vtype is GGUFValueType.BOOL:
        return bool(value)
    if vtype in _FLOAT_TYPES:
        return float(value)
    return int(value)


def _infer_int_type(value: int) -> GGUFValueType:
    # llama.cpp reads its counts as UINT32: prefer it for non-negative values.
    for vtype in (
        GGUFValueType.UINT32,
        GGUFValueType.INT32,
        GGUFValueType.UINT64,
        GGUFValueType.INT64,
    ):
        lo, hi = _INT_RANGES[vtype]
        if lo <= value < hi:
            return vtype
    raise ValueError(f"{value} does not fit in a 64-bit GGUF integer")


def _infer_element_type(key: str, items: Sequence[Any]) -> GGUFValueType:
    if len(items) == 0:
        raise ValueError(
            f"metadata {key!r}: cannot infer the element type of an empty list "
            "(and gguf-py cannot write empty arrays)"
        )
    if all(isinstance(v, str) for v in items):
        return GGUFValueType.STRING
    if all(isinstance(v, (bool, np.bool_)) for v in items):
        return GGUFValueType.BOOL
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items):
        # Arrays of ints are INT32 in GGUF files written by llama.cpp's tools.
        lo, hi = min(int(v) for v in items), max(int(v) for v in items)
        return GGUFValueType.INT32 if lo >= -(1 << 31) and hi < (1 << 31) else GGUFValueType.INT64
    if all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in items
    ):
        return GGUFValueType.FLOAT32
    raise ValueError(f"metadata {key!r}: list items must all be str, all bool, or all numbers")


def infer_metadata_value(key: str, value: Any) -> MetadataValue:
    """The GGUF type of a plain Python value (a MetadataValue passes through).

    bool -> BOOL; int -> UINT32 if it fits, else INT32, UINT64, INT64;
    float -> FLOAT32; str -> STRING; numpy scalars keep their type; a list,
    tuple or 1-D numpy array -> ARRAY (of STRING, BOOL, INT32/INT64 or
    FLOAT32, or the numpy dtype). Wrap a value in MetadataValue to choose.
    """
    if isinstance(value, MetadataValue):
        return value.checked(key)
    if isinstance(value, (bool, np.bool_)):
        mv = MetadataValue(bool(value), GGUFValueType.BOOL)
    elif isinstance(value, np.generic) and value.dtype in _NUMPY_TYPES:
        mv = MetadataValue(value.item(), _NUMPY_TYPES[value.dtype])
    elif isinstance(value, int):
        try:
            mv = MetadataValue(value, _infer_int_type(value))
        except ValueError as e:
            raise ValueError(f"metadata {key!r}: {e}") from None
    elif isinstance(value, float):
        mv = MetadataValue(value, GGUFValueType.FLOAT32)
    elif isinstance(value, str):
        mv = MetadataValue(value, GGUFValueType.STRING)
    elif isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype not in _NUMPY_TYPES:
            raise ValueError(
                f"metadata {key!r}: a numpy array value must be 1-D of a numeric or bool "
                f"dtype, got {value.dtype} with shape {list(value.shape)}"
            )
        mv = MetadataValue(value.tolist(), GGUFValueType.ARRAY, _NUMPY_TYPES[value.dtype])
    elif isinstance(value, (list, tuple)):
        mv = MetadataValue(list(value), GGUFValueType.ARRAY, _infer_element_type(key, value))
    else:
        raise ValueError(
            f"metadata {key!r}: cannot store a {type(value).__name__} value in GGUF "
            "(use bool, int, float, str, a list of them, or MetadataValue)"
        )
    return mv.checked(key)


_SCALAR_FORMATS = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_ELEMENT_DTYPES = {
    GGUFValueType.UINT8: np.dtype("<u1"),
    GGUFValueType.INT8: np.dtype("<i1"),
    GGUFValueType.UINT16: np.dtype("<u2"),
    GGUFValueType.INT16: np.dtype("<i2"),
    GGUFValueType.UINT32: np.dtype("<u4"),
    GGUFValueType.INT32: np.dtype("<i4"),
    GGUFValueType.FLOAT32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype(np.bool_),
    GGUFValueType.UINT64: np.dtype("<u8"),
    GGUFValueType.INT64: np.dtype("<i8"),
    GGUFValueType.FLOAT64: np.dtype("<f8"),
}
_read_u64 = struct.Struct("<Q").unpack_from
# Past this index a string array builds its offset table (8 bytes per element)
# instead of walking from the start for every access.
_WALK_LIMIT = 64


def _string_at(buf: Buffer, pos: int) -> tuple[str, int]:
    """The GGUF string at `pos` and the offset after it (the scan checked its bounds)."""
    length = _read_u64(buf, pos)[0]
    end = pos + 8 + length
    return bytes(buf[pos + 8 : end]).decode("utf-8", "surrogateescape"), end


class MetadataArray(Sequence[Any]):
    """One metadata array of a mapped file, decoded only where indexed.

    ``len()`` and ``element_type`` cost nothing; ``arr[:16]`` decodes sixteen
    elements; ``tolist()`` all of them. Numeric arrays are read through a
    numpy view of the mapping (``as_numpy()``, never copied).
    """

    def __init__(self, buf: Buffer, info: KVInfo) -> None:
        assert info.element_type is not None and info.length is not None
        self._buf = buf
        self.key = info.key
        self.element_type: GGUFValueType = info.element_type
        self._length = info.length
        self._first = info.value_offset
        self._offsets: array | None = None  # string arrays: each element's offset

    def __len__(self) -> int:
        return self._length

    def as_numpy(self) -> np.ndarray:
        """The elements as a read-only numpy view of the file (numeric and bool arrays)."""
        if self.element_type is GGUFValueType.STRING:
            raise TypeError(f"metadata {self.key!r} is an array of strings, not numbers")
        dtype = _ELEMENT_DTYPES[self.element_type]
        return np.frombuffer(self._buf, dtype, self._length, self._first)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._decode(start, max(start, stop))
        i = operator.index(index)
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"metadata {self.key!r}: index {index} out of range ({self._length})")
        return self._decode(i, i + 1)[0]

    def tolist(self) -> list[Any]:
        return self._decode(0, self._length)

    def _decode(self, start: int, stop: int) -> list[Any]:
        if self.element_type is not GGUFValueType.STRING:
            values = self.as_numpy()[start:stop]
            if self.element_type is GGUFValueType.BOOL:
                return [bool(v) for v in values]
            return values.tolist()
        pos = self._string_offset(start)
        out = []
        for _ in range(stop - start):
            text, pos = _string_at(self._buf, pos)
            out.append(text)
        return out

    def _string_offset(self, index: int) -> int:
        if index == 0:
            return self._first
        if index <= _WALK_LIMIT and self._offsets is None:
            return skip_strings(self._buf, self._first, index)
        if self._offsets is None:
            offsets = array("Q")
            append, pos = offsets.append, self._first
            for _ in range(self._length):
                append(pos)
                pos += 8 + _read_u64(self._buf, pos)[0]
            self._offsets = offsets
        return self._offsets[index]

    def __repr__(self) -> str:
        return f"MetadataArray({self.key!r}, {self.element_type.name}, {self._length} items)"


def decode_metadata_value(buf: Buffer, info: KVInfo) -> Any:
    """The Python value of one metadata pair (strings decoded, arrays as lists)."""
    vtype = info.value_type
    if vtype is GGUFValueType.STRING:
        return _string_at(buf, info.value_offset)[0]
    if vtype is GGUFValueType.ARRAY:
        return MetadataArray(buf, info).tolist()
    return _SCALAR_FORMATS[vtype].unpack_from(buf, info.value_offset)[0]


class ReaderMetadata(Mapping[str, Any]):
    """A GGUF file's metadata as a read-only mapping of key -> Python value.

    Opening the file decodes nothing: a value is read from the mapping on
    first access (a tokenizer vocabulary can hold hundreds of thousands of
    strings). ``array(key)`` gives an array without decoding it (length,
    element type, a prefix); ``typed(key)`` the value with its GGUF type.
    """

    def __init__(self, buf: Buffer, kvs: Sequence[KVInfo]) -> None:
        self._buf = buf
        self._infos = {kv.key: kv for kv in kvs}
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._cache:
            info = self._infos[key]  # KeyError for unknown keys, as a Mapping should
            self._cache[key] = decode_metadata_value(self._buf, info)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, key: object) -> bool:
        return key in self._infos

    def info(self, key: str) -> KVInfo:
        """Where the pair sits in the file and its types (KeyError if absent)."""
        return self._infos[key]

    def value_type(self, key: str) -> GGUFValueType:
        return self._infos[key].value_type

    def element_type(self, key: str) -> GGUFValueType | None:
        """Element type of an array value (None for scalars)."""
        return self._infos[key].element_type

    def is_array(self, key: str) -> bool:
        return self._infos[key].value_type is GGUFValueType.ARRAY

    def array(self, key: str) -> MetadataArray:
        """An array value, undecoded (TypeError for a scalar)."""
        info = self._infos[key]
        if info.value_type is not GGUFValueType.ARRAY:
            raise TypeError(f"metadata {key!r} is a {info.value_type.name}, not an array")
        return MetadataArray(self._buf, info)

    def typed(self, key: str) -> MetadataValue:
        return MetadataValue(self[key], self.value_type(key), self.element_type(key))

    def __repr__(self) -> str:
        return f"ReaderMetadata({len(self)} keys: {', '.join(list(self)[:8])}...)"
