"""Views that let kernels index every operand as a 2-D [rows, columns] buffer."""

from __future__ import annotations

from xdsl.dialects import memref
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    DenseArrayBase,
    IntegerAttr,
    MemRefType,
    i64,
)

from quantir.compiler.lowering.emitter import Emitter, Value


def _reassociation(groups: list[list[int]]) -> ArrayAttr:
    return ArrayAttr([ArrayAttr([IntegerAttr(i, i64) for i in g]) for g in groups])


def as_rows(e: Emitter, mem: Value) -> Value:
    """`mem` [..., K] viewed as [M, K] (M = product of the leading dims)."""
    t = mem.type
    assert isinstance(t, MemRefType)
    shape = list(t.get_shape())
    if len(shape) == 2:
        return mem
    if len(shape) == 1:
        out_t = MemRefType(t.element_type, [1, shape[0]])
        sizes = [e.dim(mem, 0)] if shape[0] == DYNAMIC_INDEX else []
        op = memref.ExpandShapeOp.create(
            operands=[mem, *sizes],
            result_types=[out_t],
            properties={
                "reassociation": _reassociation([[0, 1]]),
                "static_output_shape": DenseArrayBase.from_list(i64, [1, shape[0]]),
            },
        )
        return e.v(op)
    lead = shape[:-1]
    m = DYNAMIC_INDEX if DYNAMIC_INDEX in lead else _prod(lead)
    return _collapse(e, mem, [m, shape[-1]], [list(range(len(lead))), [len(lead)]])


def as_vector(e: Emitter, mem: Value) -> Value:
    """`mem` of any rank >= 1 viewed as 1-D (a gather's indices)."""
    t = mem.type
    assert isinstance(t, MemRefType)
    shape = list(t.get_shape())
    if len(shape) == 1:
        return mem
    n = DYNAMIC_INDEX if DYNAMIC_INDEX in shape else _prod(shape)
    return _collapse(e, mem, [n], [list(range(len(shape)))])


def _collapse(e: Emitter, mem: Value, shape: list[int], groups: list[list[int]]) -> Value:
    """memref.collapse_shape of `mem` to `shape`, merging the dimensions of each group."""
    t = mem.type
    assert isinstance(t, MemRefType)
    op = memref.CollapseShapeOp.create(
        operands=[mem],
        result_types=[MemRefType(t.element_type, shape)],
        properties={"reassociation": _reassociation(groups)},
    )
    return e.v(op)


def _prod(xs: list[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out
