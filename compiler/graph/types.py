"""Tensor types of the graph builder and their IR (xDSL) form.

A dimension is an int (static size) or a str (a symbolic size such as
"batch"). Symbols exist only while building: the IR prints every symbolic
dimension as `?`, and the builder uses the names to reject shapes that
cannot agree (two different symbols where equality is required).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    Float16Type,
    Float32Type,
    IntegerType,
    Signedness,
)
from xdsl.dialects.builtin import TensorType as IRTensorType
from xdsl.ir import Attribute

from quantir.dialects.weight import DeviceRef, DType

__all__ = [
    "Dim",
    "TensorType",
    "element_type",
    "format_dim",
    "format_shape",
    "ir_shape",
    "normalize_dim",
]

Dim = int | str
"""A static size (positive int) or a symbolic size (an identifier such as "batch")."""

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _element_types() -> dict[DType, Attribute]:
    # The element types quantir's runtime can hold in buffers
    # (runtime.host_plan.numpy_dtypes): everything else would compile but
    # could never be called.
    return {
        DType.float32: Float32Type(),
        DType.float16: Float16Type(),
        DType.uint8: IntegerType(8, Signedness.UNSIGNED),
        DType.int8: IntegerType(8),
        DType.int32: IntegerType(32),
        DType.int64: IntegerType(64),
    }


_ELEMENT_TYPES = _element_types()


def element_type(dtype: DType) -> Attribute:
    """The IR element type of `dtype`; ValueError for dtypes graphs cannot hold."""
    if not isinstance(dtype, DType):
        raise ValueError(f"expected a DType (e.g. DType.float32), got {dtype!r}")
    try:
        return _ELEMENT_TYPES[dtype]
    except KeyError:
        names = ", ".join(d.name for d in _ELEMENT_TYPES)
        raise ValueError(
            f"DType.{dtype.name} is not supported in quantir graphs (supported: {names})"
        ) from None


def normalize_dim(dim: object, what: str = "dimension") -> Dim:
    """Check one dimension: a positive int or a symbol name."""
    if isinstance(dim, bool):
        raise ValueError(f"{what} must be a positive int or a symbol name, got {dim!r}")
    if isinstance(dim, int | np.integer):
        if dim <= 0:
            raise ValueError(f"{what} must be positive, got {int(dim)}")
        return int(dim)
    if isinstance(dim, str):
        if not _SYMBOL.fullmatch(dim):
            raise ValueError(
                f"{what}: a symbolic dimension is an identifier (letters, digits, _), got {dim!r}"
            )
        return dim
    raise ValueError(f"{what} must be a positive int or a symbol name, got {dim!r}")


def format_dim(dim: Dim) -> str:
    return str(dim)


def format_shape(shape: Iterable[Dim]) -> str:
    return "[" + ", ".join(format_dim(d) for d in shape) + "]"


def ir_shape(shape: Iterable[Dim]) -> list[int]:
    """The IR shape: symbols become dynamic (`?`)."""
    return [d if isinstance(d, int) else DYNAMIC_INDEX for d in shape]


class TensorType:
    """The type of a graph tensor: element dtype, shape (ints and symbols), device.

    ``TensorType(DType.float32, ["batch", 4096])``. The device is recorded
    for API compatibility; where a graph runs is chosen by
    ``quantir.runtime.compile_graph(graph, device=...)``.
    """

    __slots__ = ("device", "dtype", "shape")

    def __init__(
        self,
        dtype: DType,
        shape: Sequence[Dim],
        device: DeviceRef | None = None,
    ) -> None:
        element_type(dtype)  # rejects dtypes graphs cannot hold
        if isinstance(shape, str | bytes) or not isinstance(shape, Sequence | np.ndarray):
            raise ValueError(f"TensorType shape must be a list of dimensions, got {shape!r}")
        dims = tuple(normalize_dim(d, f"TensorType dimension {i}") for i, d in enumerate(shape))
        device = device if device is not None else DeviceRef.CPU()
        if not isinstance(device, DeviceRef):
            raise ValueError(f"TensorType device must be a DeviceRef, got {device!r}")
        self.dtype: DType = dtype
        self.shape: tuple[Dim, ...] = dims
        self.device: DeviceRef = device

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def to_mlir(self) -> IRTensorType:
        return IRTensorType(element_type(self.dtype), ir_shape(self.shape))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorType) and (self.dtype, self.shape, self.device) == (
            other.dtype,
            other.shape,
            other.device,
        )

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape, self.device))

    def __repr__(self) -> str:
        return f"TensorType({self.dtype.name}, {format_shape(self.shape)}, {self.device})"
