"""Checking user buffers before compiled code touches them.

Compiled kernels trust their arguments completely: a wrong dtype, shape or
stride would read or write out of bounds. Every buffer is therefore checked
here first, and a mismatch is a `BufferError` that names the buffer and says
what was expected.
"""

from __future__ import annotations

import numpy as np

from quantir.runtime.host_plan import BufferSpec


class BufferError(ValueError):
    """A buffer given to compiled code has the wrong dtype, shape or layout."""


def describe_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def check_buffer(
    what: str, array: object, spec: BufferSpec, *, writable: bool = False
) -> np.ndarray:
    """Return `array` if it satisfies `spec`, else raise BufferError naming `what`.

    A GPU `DeviceBuffer` (contiguous by construction) is checked for dtype and shape.
    """
    if type(array).__name__ == "DeviceBuffer" and hasattr(array, "ptr"):
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


def _check_dtype_shape(what: str, dtype: np.dtype, shape: tuple, spec: BufferSpec) -> None:
    if dtype.name not in spec.dtypes:
        raise BufferError(f"{what}: expected dtype {' or '.join(spec.dtypes)}, got {dtype.name}")
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


def check_no_overlap(outputs: list[tuple[str, np.ndarray]], others: list[tuple[str, np.ndarray]]):
    """Outputs must not share memory with each other or with any input or weight."""
    for i, (name, out) in enumerate(outputs):
        for other_name, other in outputs[i + 1 :] + others:
            if np.shares_memory(out, other):
                raise BufferError(f"{name} overlaps {other_name}: outputs need their own memory")


def aligned_empty(shape: tuple[int, ...], dtype: str, alignment: int = 64) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an `alignment` boundary."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    raw = np.empty(count * dt.itemsize + alignment, dtype=np.uint8)
    offset = (-raw.ctypes.data) % alignment
    return raw[offset : offset + count * dt.itemsize].view(dt).reshape(shape)
