"""Checking user buffers before compiled code touches them.

Compiled kernels trust their arguments completely: a wrong dtype, shape or
stride would read or write out of bounds. Every buffer is therefore checked
here first, and a mismatch is a `BufferError` that names the buffer and says
what was expected.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from quantir.dialects.errors import QuantirError
from quantir.runtime.host_plan import BufferSpec


class BufferError(ValueError, QuantirError):
    """A buffer given to compiled code has the wrong dtype, shape or layout."""


def describe_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def is_device_buffer(value: object) -> bool:
    """Whether `value` is a GPU `DeviceBuffer` (without importing the CUDA runtime)."""
    return type(value).__name__ == "DeviceBuffer" and hasattr(value, "ptr")


def check_buffer(
    what: str, array: object, spec: BufferSpec, *, writable: bool = False, on_gpu: bool = False
) -> np.ndarray:
    """Return `array` if it satisfies `spec`, else raise BufferError naming `what`.

    A GPU `DeviceBuffer` (contiguous by construction) is checked for dtype and
    shape; only a program that runs on the GPU (`on_gpu`) takes one.
    """
    if is_device_buffer(array):
        if not on_gpu:
            raise BufferError(f"{what}: a GPU buffer cannot be used by a CPU program")
        _check_dtype_shape(what, array.dtype, tuple(array.shape), spec)
        return array  # type: ignore[return-value]
    if not isinstance(array, np.ndarray):
        raise BufferError(f"{what}: expected a numpy array, got {type(array).__name__}")
    _check_dtype_shape(what, array.dtype, array.shape, spec)
    if not array.flags.c_contiguous:
        raise BufferError(
            f"{what}: must be C-contiguous (row-major, no strides); pass np.ascontiguousarray(...)"
        )
    if writable and not array.flags.writeable:
        raise BufferError(f"{what}: is read-only but the graph writes its result there")
    return array


def dtype_problem(dtype: np.dtype, accepted: Sequence[str]) -> str | None:
    """Why an array of `dtype` cannot stand for one of the numpy dtypes `accepted`, or None.

    Every entry point (eager buffers, out=, .npy inputs, .npz and dict weights)
    asks this one question. Compiled code reads memory in the machine's byte
    order, so a byte-swapped array (``>f4`` on a little-endian host) is refused
    even though numpy calls its dtype "float32": taking it would give wrong
    numbers, not an error.
    """
    dtype = np.dtype(dtype)
    if (dtype, accepted) in _ACCEPTED:  # a call's fixed cost: dtype.name is slow
        return None
    if dtype.name not in accepted:
        return f"expected dtype {' or '.join(accepted)}, got {dtype.name}"
    if not dtype.isnative:
        order = "big" if sys.byteorder == "little" else "little"
        return (
            f"expected dtype {dtype.name} in the machine's byte order ({sys.byteorder}-endian), "
            f"got {order}-endian {dtype.str}; convert it with "
            f".astype(np.dtype('{dtype.name}'))"
        )
    if isinstance(accepted, tuple) and len(_ACCEPTED) < 1024:
        _ACCEPTED.add((dtype, accepted))
    return None


_ACCEPTED: set[tuple[np.dtype, tuple[str, ...]]] = set()
"""(dtype, accepted) pairs already found fine."""


def _check_dtype_shape(what: str, dtype: np.dtype, shape: tuple, spec: BufferSpec) -> None:
    problem = dtype_problem(dtype, spec.dtypes)
    if problem is not None:
        raise BufferError(f"{what}: {problem}")
    if len(shape) != len(spec.shape):
        raise BufferError(
            f"{what}: expected {len(spec.shape)} dimensions {describe_shape(spec.shape)}, "
            f"got shape {list(shape)}"
        )
    for i, (want, got) in enumerate(zip(spec.shape, shape)):
        if want >= 0 and want != got:
            raise BufferError(
                f"{what}: dimension {i} must be {want} (shape {describe_shape(spec.shape)}), "
                f"got shape {list(shape)}"
            )


def row_index_problem(indices: np.ndarray, rows: int) -> str | None:
    """Why `indices` cannot select rows of a table of `rows` rows, or None.

    Gather kernels read the rows their indices name: the first value outside
    [0, rows) is reported, with where it is.
    """
    if indices.size == 0:
        return None
    if indices.min() >= 0 and indices.max() < rows:
        return None
    bad = int(np.flatnonzero((indices < 0) | (indices >= rows))[0])
    where = np.unravel_index(bad, indices.shape)
    position = str(int(where[0])) if len(where) == 1 else str([int(i) for i in where])
    value = int(indices[where])
    why = "is negative" if value < 0 else f"is past the last row ({rows - 1})"
    return (
        f"index {value} at position {position} {why}; indices must be in [0, {rows}) "
        f"for the {rows} rows of"
    )


def check_no_overlap(outputs: list[tuple[str, np.ndarray]], others: list[tuple[str, np.ndarray]]):
    """Outputs must not share memory with each other or with any input or weight."""
    for i, (name, out) in enumerate(outputs):
        for other_name, other in outputs[i + 1 :] + others:
            if np.shares_memory(out, other):
                raise BufferError(f"{name} overlaps {other_name}: outputs need their own memory")


def aligned_empty(shape: tuple[int, ...], dtype: str, alignment: int = 64) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an `alignment` boundary."""
    dt = np.dtype(dtype)
    count = math.prod(shape)
    raw = np.empty(count * dt.itemsize + alignment, dtype=np.uint8)
    offset = (-raw.ctypes.data) % alignment
    return raw[offset : offset + count * dt.itemsize].view(dt).reshape(shape)


class BufferPool:
    """Temporaries kept between calls, by (shape, dtype), up to `limit` bytes.

    A program's temporaries (a qmatmul's quantized x, ...) have the same
    shapes from one call to the next at a given M: a buffer given back by one
    call is taken by the next, so small calls (decode, M = 1) allocate
    nothing. The least recently given shapes go first when over the limit.
    """

    def __init__(self, limit: int = 64 << 20):
        self.limit = limit
        self._kept: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        key = (tuple(shape), np.dtype(dtype))
        with self._lock:
            kept = self._kept.get(key)
            if kept:
                buffer = kept.pop()
                self._bytes -= buffer.nbytes
                return buffer
        return aligned_empty(key[0], key[1])

    def give(self, buffer: np.ndarray) -> None:
        if buffer.nbytes > self.limit:
            return
        key = (buffer.shape, buffer.dtype)
        with self._lock:
            self._kept.setdefault(key, []).append(buffer)
            self._kept.move_to_end(key)
            self._bytes += buffer.nbytes
            while self._bytes > self.limit:
                oldest, kept = next(iter(self._kept.items()))
                self._bytes -= kept.pop(0).nbytes
                if not kept:
                    del self._kept[oldest]
