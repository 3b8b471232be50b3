"""Parse a GGUF file's header, metadata layout and tensor table, checked.

gguf-py's reader trusts the file: a corrupt count makes it loop for hours or
allocate without bound, a truncated file gives numpy reshape errors, an
unknown type id an enum ValueError; and it builds Python objects for every
element of every metadata array (seconds for a real vocabulary). ``scan_gguf``
walks the layout with bounds checks on every read and plausibility limits on
every count, raises ``GGUFFormatError`` naming the file and the first problem
found, and records where each value sits (``KVInfo``) without decoding it:
arrays keep their element type, length and offset, so the reader decodes a
value only when asked.

GGUF layout (little-endian; v2 and v3 share it):
header   magic "GGUF", u32 version, u64 tensor_count, u64 kv_count
kv       kv_count x (string key, u32 value_type, value)
infos    tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset)
padding  to general.alignment (default 32)
data     tensors at their offsets (each aligned) from the start of this section
A string is a u64 byte length and that many UTF-8 bytes.
"""

from __future__ import annotations

import itertools
import mmap
import os
import stat
import struct
from dataclasses import dataclass

from gguf import GGUFValueType

from quantir.runtime.gguf.errors import GGUFFormatError
from quantir.runtime.gguf.ggml_types import block_shape, ggml_type_from_id

__all__ = [
    "GGUF_MAGIC",
    "HEADER_BYTES",
    "MAX_ARRAY_ELEMENTS",
    "MAX_DIMS",
    "SUPPORTED_VERSIONS",
    "GGUFLayout",
    "KVInfo",
    "TensorInfo",
    "map_gguf",
    "scan_buffer",
    "scan_gguf",
    "skip_strings",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
HEADER_BYTES = 24
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32
# Real vocabularies have a few hundred thousand entries, so 16 Mi is generous
# yet keeps a corrupt length from costing gigabytes once a value is decoded
# (opening never decodes arrays).
MAX_ARRAY_ELEMENTS = 1 << 24
# ggml's tensor sizes are int64: larger element counts cannot be real.
MAX_ELEMENTS = (1 << 63) - 1

_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1,
    GGUFValueType.INT8: 1,
    GGUFValueType.UINT16: 2,
    GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4,
    GGUFValueType.INT32: 4,
    GGUFValueType.FLOAT32: 4,
    GGUFValueType.BOOL: 1,
    GGUFValueType.UINT64: 8,
    GGUFValueType.INT64: 8,
    GGUFValueType.FLOAT64: 8,
}
# Smallest encodings, used to bound counts against the bytes left.
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, a one-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dim, type, offset
_MIN_STRING_BYTES = 8


@dataclass(frozen=True)
class KVInfo:
    """Where one metadata pair sits and what types it holds."""

    key: str
    offset: int  # of the pair (its key)
    value_type: GGUFValueType
    element_type: GGUFValueType | None  # arrays only (known even when empty)
    length: int | None  # arrays only
    value_offset: int  # the value's bytes (an array's first element; a string's length)
    value_end: int  # just past the value


@dataclass(frozen=True)
class TensorInfo:
    """One tensor-info record as stored (ne in ggml order: ne0 innermost)."""

    name: str
    ne: tuple[int, ...]
    type_id: int
    offset: int  # relative to GGUFLayout.data_offset
    nbytes: int


@dataclass(frozen=True)
class GGUFLayout:
    """What the scan learned: enough to cross-check gguf-py's parse."""

    path: str
    file_size: int
    version: int
    alignment: int
    data_offset: int
    kvs: tuple[KVInfo, ...]
    tensors: tuple[TensorInfo, ...]


class _Cursor:
    """Bounds-checked little-endian reads from a buffer."""

    def __init__(self, buf: mmap.mmap | bytes, path: str) -> None:
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.path = path

    def fail(self, problem: str) -> GGUFFormatError:
        return GGUFFormatError(self.path, problem)

    def need(self, nbytes: int, what: str) -> None:
        if nbytes > self.size - self.pos:
            raise self.fail(
                f"truncated: {what} at byte {self.pos} needs {nbytes} bytes, "
                f"but the file ends at byte {self.size}"
            )

    def u32(self, what: str) -> int:
        self.need(4, what)
        (value,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return value

    def u64(self, what: str) -> int:
        self.need(8, what)
        (value,) = struct.unpack_from("<Q", self.buf, self.pos)
        self.pos += 8
        return value

    def skip(self, nbytes: int, what: str) -> None:
        self.need(nbytes, what)
        self.pos += nbytes

    def string_bytes(self, what: str) -> bytes:
        length = self.u64(f"length of {what}")
        self.need(length, f"{what} ({length} bytes)")
        data = self.buf[self.pos : self.pos + length]
        self.pos += length
        return data

    def text(self, what: str) -> str:
        start = self.pos
        data = self.string_bytes(what)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} at byte {start} is not valid UTF-8") from None

    def skip_string(self, what: str) -> None:
        length = self.u64(f"length of {what}")
        self.skip(length, f"{what} ({length} bytes)")


def _value_type(cursor: _Cursor, raw: int, what: str) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        known = ", ".join(f"{t.value} ({t.name})" for t in GGUFValueType)
        raise cursor.fail(f"{what} has unknown value type id {raw}; known: {known}") from None


def _skip_value(
    cursor: _Cursor, vtype: GGUFValueType, what: str
) -> tuple[GGUFValueType | None, int | None]:
    """Skip over one value; for arrays return (element type, length)."""
    if vtype in _SCALAR_SIZES:
        cursor.skip(_SCALAR_SIZES[vtype], what)
        return None, None
    if vtype is GGUFValueType.STRING:
        cursor.skip_string(what)
        return None, None
    # ARRAY: element type, length, elements.
    etype = _value_type(cursor, cursor.u32(f"element type of {what}"), f"array {what}")
    length = cursor.u64(f"length of {what}")
    if etype is GGUFValueType.ARRAY:
        # ggml itself refuses nested arrays; gguf-py would recurse without limit.
        raise cursor.fail(f"{what} is an array of arrays, which GGUF readers do not support")
    if length > MAX_ARRAY_ELEMENTS:
        raise cursor.fail(
            f"{what} claims {length} elements, more than quantir's limit of "
            f"{MAX_ARRAY_ELEMENTS} per metadata array"
        )
    if etype in _SCALAR_SIZES:
        cursor.skip(length * _SCALAR_SIZES[etype], f"{length} elements of {what}")
        return etype, length
    # Strings: bound the count first so a corrupt length fails at once.
    cursor.need(length * _MIN_STRING_BYTES, f"{length} string elements of {what}")
    end = skip_strings(cursor.buf, cursor.pos, length)
    if end > cursor.size:
        _fail_in_strings(cursor, length, what)
    cursor.pos = end
    return etype, length


_read_u64 = struct.Struct("<Q").unpack_from


def skip_strings(buf: mmap.mmap | bytes, pos: int, count: int) -> int:
    """Offset just past `count` GGUF strings starting at `pos` (a length > the buffer if
    they do not fit: callers check it). Vocabularies hold 10^5 - 10^6 strings, so this
    loop is kept to one unpack and one add per string."""
    size = len(buf)
    try:
        for _ in range(count):
            pos += 8 + _read_u64(buf, pos)[0]
    except struct.error:  # a length ran past the end: pos is already past it, or near it
        return size + 1
    return pos


def _fail_in_strings(cursor: _Cursor, length: int, what: str) -> None:
    """Walk the strings again, checked, to name the one that runs past the end."""
    for index in range(length):
        cursor.skip_string(f"element {index} of {what}")
    raise AssertionError("skip_strings and the checked walk disagree")


def _scan_kvs(cursor: _Cursor, count: int) -> tuple[list[KVInfo], int]:
    kvs: list[KVInfo] = []
    seen: set[str] = set()
    alignment = DEFAULT_ALIGNMENT
    for index in range(count):
        start = cursor.pos
        key = cursor.text(f"key of metadata pair {index}")
        if key in seen:
            raise cursor.fail(f"metadata key {key!r} appears twice (second at byte {start})")
        seen.add(key)
        vtype = _value_type(cursor, cursor.u32(f"value type of {key!r}"), f"metadata {key!r}")
        value_pos = cursor.pos
        etype, length = _skip_value(cursor, vtype, f"value of {key!r}")
        first = value_pos + 12 if vtype is GGUFValueType.ARRAY else value_pos
        if key == "general.alignment":
            if vtype is not GGUFValueType.UINT32:
                raise cursor.fail(f"general.alignment must be UINT32, got {vtype.name}")
            (alignment,) = struct.unpack_from("<I", cursor.buf, value_pos)
            if alignment == 0 or alignment & (alignment - 1):
                raise cursor.fail(
                    f"general.alignment is {alignment}: expected a non-zero power of two"
                )
        kvs.append(KVInfo(key, start, vtype, etype, length, first, cursor.pos))
    return kvs, alignment


def _scan_tensor_info(cursor: _Cursor, index: int, alignment: int) -> TensorInfo:
    start = cursor.pos
    name = cursor.text(f"name of tensor {index}")
    label = f"tensor {name!r} (info at byte {start})"
    n_dims = cursor.u32(f"n_dims of {label}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise cursor.fail(f"{label} has {n_dims} dimensions: expected 1 to {MAX_DIMS}")
    ne = tuple(cursor.u64(f"dimension {d} of {label}") for d in range(n_dims))
    if any(n == 0 or n > MAX_ELEMENTS for n in ne):
        raise cursor.fail(f"{label} has dimensions {list(ne)}: each must be in 1..2^63-1")
    n_elements = 1
    for n in ne:  # Python ints: no overflow; stop as soon as it is absurd
        n_elements *= n
        if n_elements > MAX_ELEMENTS:
            raise cursor.fail(f"{label} has dimensions {list(ne)}: too many elements")
    type_id = cursor.u32(f"type of {label}")
    qtype = ggml_type_from_id(type_id)
    if qtype is None:
        raise cursor.fail(f"{label} has unknown ggml type id {type_id}")
    elements, block_bytes = block_shape(qtype)
    if ne[0] % elements:
        raise cursor.fail(
            f"{label} has rows of {ne[0]} elements, not a multiple of the "
            f"{qtype.name} block size {elements}"
        )
    nbytes = n_elements // elements * block_bytes
    if nbytes > cursor.size:
        raise cursor.fail(
            f"{label} needs {nbytes} bytes of data ({qtype.name} {list(ne)}), "
            f"more than the whole file ({cursor.size} bytes): the file is truncated or "
            "the dimensions are corrupt"
        )
    offset = cursor.u64(f"data offset of {label}")
    if offset % alignment:
        raise cursor.fail(
            f"{label} has data offset {offset}, not a multiple of the alignment {alignment}"
        )
    return TensorInfo(name, ne, type_id, offset, nbytes)


def _check_data(cursor: _Cursor, tensors: list[TensorInfo], data_offset: int) -> None:
    for t in tensors:
        end = data_offset + t.offset + t.nbytes
        if end > cursor.size:
            raise cursor.fail(
                f"truncated: tensor {t.name!r} data spans bytes {data_offset + t.offset}.."
                f"{end}, but the file ends at byte {cursor.size}"
            )
    ordered = sorted(tensors, key=lambda t: t.offset)
    for a, b in itertools.pairwise(ordered):
        if a.offset + a.nbytes > b.offset:
            raise cursor.fail(f"tensors {a.name!r} and {b.name!r} overlap in the data section")


def _open_checked(path: str) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise GGUFFormatError(path, "no such file") from None
    except OSError as e:
        raise GGUFFormatError(path, f"cannot read it: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise GGUFFormatError(path, "is a directory, not a GGUF file")
    if not stat.S_ISREG(st.st_mode):
        raise GGUFFormatError(path, "is not a regular file")
    if st.st_size < HEADER_BYTES:
        raise GGUFFormatError(
            path,
            f"too small for a GGUF file ({st.st_size} bytes; the header alone is {HEADER_BYTES})",
        )
    return st.st_size


def map_gguf(path: str | os.PathLike[str]) -> mmap.mmap:
    """The file mapped read-only, after the checks a path needs (exists, regular, big
    enough); GGUFFormatError naming it otherwise."""
    path = os.fspath(path)
    _open_checked(path)
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:  # ValueError: the file shrank to nothing meanwhile
        reason = getattr(e, "strerror", None) or e
        raise GGUFFormatError(path, f"cannot read it: {reason}") from None


def scan_buffer(buf: mmap.mmap | bytes, path: str | os.PathLike[str]) -> GGUFLayout:
    """Check the structure of a mapped GGUF file; GGUFFormatError on the first problem."""
    path = os.fspath(path)
    if len(buf) < HEADER_BYTES:
        raise GGUFFormatError(
            path,
            f"too small for a GGUF file ({len(buf)} bytes; the header alone is {HEADER_BYTES})",
        )
    return _scan(_Cursor(buf, path))


def scan_gguf(path: str | os.PathLike[str]) -> GGUFLayout:
    """Check the structure of a GGUF file; raise GGUFFormatError on the first problem."""
    with map_gguf(path) as buf:
        return scan_buffer(buf, path)


def _scan(cursor: _Cursor) -> GGUFLayout:
    magic = cursor.buf[:4]
    if magic != GGUF_MAGIC:
        raise cursor.fail(f"not a GGUF file: it starts with {magic!r}, expected {GGUF_MAGIC!r}")
    cursor.pos = 4
    version = cursor.u32("version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and (version >> 24) in SUPPORTED_VERSIONS:
            raise cursor.fail("big-endian GGUF file: quantir reads little-endian files only")
        raise cursor.fail(
            f"GGUF version {version} is not supported (supported: "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    tensor_count = cursor.u64("tensor count")
    kv_count = cursor.u64("metadata pair count")
    room = cursor.size - cursor.pos
    if kv_count * _MIN_KV_BYTES > room:
        raise cursor.fail(
            f"header claims {kv_count} metadata pairs, which cannot fit in the "
            f"{room} bytes after the header"
        )
    if tensor_count * _MIN_TENSOR_INFO_BYTES + kv_count * _MIN_KV_BYTES > room:
        raise cursor.fail(
            f"header claims {tensor_count} tensors and {kv_count} metadata pairs, "
            f"which cannot fit in the {room} bytes after the header"
        )
    kvs, alignment = _scan_kvs(cursor, kv_count)
    cursor.need(tensor_count * _MIN_TENSOR_INFO_BYTES, f"{tensor_count} tensor infos")
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for index in range(tensor_count):
        info = _scan_tensor_info(cursor, index, alignment)
        if info.name in names:
            raise cursor.fail(f"tensor name {info.name!r} appears twice")
        names.add(info.name)
        tensors.append(info)
    data_offset = -(-cursor.pos // alignment) * alignment
    _check_data(cursor, tensors, data_offset)
    return GGUFLayout(
        path=cursor.path,
        file_size=cursor.size,
        version=version,
        alignment=alignment,
        data_offset=data_offset,
        kvs=tuple(kvs),
        tensors=tuple(tensors),
    )
