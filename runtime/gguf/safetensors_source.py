"""Plain (float or integer) tensors of a .safetensors file, memory-mapped.

The converter reads float weights from safetensors files. The safetensors
package's numpy loader cannot hand out bfloat16 (numpy has no such dtype)
and copies the data, so this module reads the simple format itself:

    u64 N (little-endian) | N bytes of JSON header | data
    header: {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [...],
             "data_offsets": [begin, end]}, ...}, offsets relative to the data.

Every header field is checked; problems raise ``GGUFFormatError`` (the
error type of this package's file readers) naming the file.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

from quantir.runtime.gguf.errors import GGUFFormatError
from quantir.runtime.gguf.ggml_types import bfloat16_to_float32
from quantir.runtime.gguf.validate import MAX_DIMS

__all__ = ["SafetensorsTensor", "read_safetensors"]

# The safetensors format caps its header at 100 MB; anything beyond is corrupt.
MAX_HEADER_BYTES = 100_000_000

# safetensors dtype -> (ggml type, numpy dtype of the stored elements)
_DTYPES: dict[str, tuple[GGMLQuantizationType, np.dtype]] = {
    "F32": (GGMLQuantizationType.F32, np.dtype("<f4")),
    "F16": (GGMLQuantizationType.F16, np.dtype("<f2")),
    "BF16": (GGMLQuantizationType.BF16, np.dtype("<u2")),
    "F64": (GGMLQuantizationType.F64, np.dtype("<f8")),
    "I8": (GGMLQuantizationType.I8, np.dtype("i1")),
    "I16": (GGMLQuantizationType.I16, np.dtype("<i2")),
    "I32": (GGMLQuantizationType.I32, np.dtype("<i4")),
    "I64": (GGMLQuantizationType.I64, np.dtype("<i8")),
}


class SafetensorsTensor:
    """One tensor: the same reading interface as GGUFTensor (name, shape, ggml_type, data)."""

    def __init__(
        self,
        path: Path,
        name: str,
        ggml_type: GGMLQuantizationType,
        shape: tuple[int, ...],
        data: np.ndarray,
    ) -> None:
        self.path = path
        self.name = name
        self.ggml_type = ggml_type
        self.shape = shape
        self._data = data

    @property
    def type_name(self) -> str:
        return self.ggml_type.name

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    @property
    def data(self) -> np.ndarray:
        """Memory-mapped elements of the logical shape (bfloat16 as raw uint16 bits)."""
        return self._data

    def to_float32(self) -> np.ndarray:
        if self.ggml_type is GGMLQuantizationType.BF16:
            return bfloat16_to_float32(self._data)
        return self._data.astype(np.float32)

    def __repr__(self) -> str:
        return f"SafetensorsTensor({self.name!r}, {self.type_name}, shape={list(self.shape)})"


def _fail(path: Path, problem: str) -> GGUFFormatError:
    return GGUFFormatError(path, problem)


def _read_header(path: Path) -> tuple[dict, int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except OSError as e:
        raise _fail(path, f"cannot read it: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _fail(path, "is not a regular file")
    size = st.st_size
    if size < 8:
        raise _fail(path, f"too small for a safetensors file ({size} bytes)")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise _fail(
                path,
                f"not a safetensors file: header length {header_len} does not fit "
                f"in the file ({size} bytes)",
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"not a safetensors file: its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, "not a safetensors file: its header is not a JSON object")
    return header, 8 + header_len, size


def _entry(path: Path, name: str, entry: object, data_bytes: int) -> tuple[str, tuple, int, int]:
    if not isinstance(entry, dict):
        raise _fail(path, f"header entry of {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPES:
        raise _fail(
            path,
            f"tensor {name!r} has dtype {dtype!r}; quantir reads "
            f"{', '.join(_DTYPES)} from safetensors files",
        )
    if not isinstance(shape, list) or any(type(d) is not int or d < 0 for d in shape):
        raise _fail(path, f"tensor {name!r} has a bad shape {shape!r}")
    if not 1 <= len(shape) <= MAX_DIMS or 0 in shape:
        raise _fail(
            path,
            f"tensor {name!r} has shape {shape}: GGUF tensors need 1 to {MAX_DIMS} "
            "non-zero dimensions",
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or any(type(o) is not int for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_bytes
    ):
        raise _fail(path, f"tensor {name!r} has data offsets {offsets!r} outside the file")
    n_elements = 1
    for d in shape:
        n_elements *= d
    if offsets[1] - offsets[0] != n_elements * _DTYPES[dtype][1].itemsize:
        raise _fail(
            path,
            f"tensor {name!r}: {dtype} {shape} needs "
            f"{n_elements * _DTYPES[dtype][1].itemsize} bytes, its offsets span "
            f"{offsets[1] - offsets[0]}",
        )
    return dtype, tuple(shape), offsets[0], offsets[1]


def read_safetensors(path: str | os.PathLike[str]) -> tuple[list[SafetensorsTensor], dict]:
    """The tensors (in file-offset order) and the ``__metadata__`` of a .safetensors file."""
    path = Path(path)
    header, data_start, size = _read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _fail(path, "__metadata__ is not a JSON object")
    entries = [(name, *_entry(path, name, e, size - data_start)) for name, e in header.items()]
    entries.sort(key=lambda e: e[3])
    mapped = np.memmap(path, mode="r", dtype=np.uint8) if entries else None
    tensors = []
    for name, dtype, shape, begin, end in entries:
        qtype, np_dtype = _DTYPES[dtype]
        assert mapped is not None
        view = mapped[data_start + begin : data_start + end].view(np_dtype).reshape(shape)
        tensors.append(SafetensorsTensor(path, name, qtype, shape, view))
    return tensors, metadata
