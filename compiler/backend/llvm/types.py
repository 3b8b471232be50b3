"""MLIR types as LLVM types, and the lowered form of a memref.

`index` is i64; 1-D vectors become LLVM vectors. A memref is not one LLVM
value: it is a pointer to its first element plus its sizes (row-major and
contiguous: the runtime checks every buffer before a call), held as a
`MemRefValue` while its function is translated.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    VectorType,
)
from xdsl.ir import Attribute

from quantir.compiler.backend.llvm.context import TranslationError

I64 = ir.IntType(64)
I32 = ir.IntType(32)


@dataclass
class MemRefValue:
    """A lowered memref: base pointer (to element 0) and sizes (ints or i64 values)."""

    ptr: ir.Value
    elem: ir.Type
    sizes: list[int | ir.Value]
    addrspace: int = 0


def llvm_type(t: Attribute) -> ir.Type:
    if isinstance(t, IndexType):
        return I64
    if isinstance(t, IntegerType):
        return ir.IntType(t.width.data)
    if isinstance(t, Float16Type):
        return ir.HalfType()
    if isinstance(t, Float32Type):
        return ir.FloatType()
    if isinstance(t, Float64Type):
        return ir.DoubleType()
    if isinstance(t, VectorType):
        shape = t.get_shape()
        if len(shape) != 1:
            raise TranslationError(f"only 1-D vectors are supported, got {t}")
        return ir.VectorType(llvm_type(t.element_type), shape[0])
    raise TranslationError(f"no LLVM type for {t}")


def is_float(t: ir.Type) -> bool:
    """A floating-point scalar, or a vector of them."""
    if isinstance(t, ir.VectorType):
        t = t.element
    return isinstance(t, ir.HalfType | ir.FloatType | ir.DoubleType)


def natural_alignment(t: ir.Type) -> int:
    """Natural alignment of a scalar element (vectors are accessed at element alignment)."""
    if isinstance(t, ir.IntType):
        return max(1, t.width // 8)
    if isinstance(t, ir.HalfType):
        return 2
    if isinstance(t, ir.FloatType):
        return 4
    if isinstance(t, ir.DoubleType):
        return 8
    return 1


def mangle(t: ir.Type) -> str:
    """The type's suffix in an overloaded intrinsic's name (`v8f32`, `i64`)."""
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{mangle(t.element)}"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.HalfType):
        return "f16"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    raise TranslationError(f"cannot mangle {t}")
