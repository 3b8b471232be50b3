"""1-D vector ops: broadcast, element access, shuffles, bitcasts, FMA and reductions.

Vector loads and stores are memory accesses (see `memref`); elementwise
arithmetic on vectors is in `arith`.
"""

from __future__ import annotations

import llvmlite.ir as ir
from xdsl.dialects import vector
from xdsl.ir import Operation

from quantir.compiler.backend.llvm.arith import fast_flags
from quantir.compiler.backend.llvm.context import FunctionContext, OpHandler, TranslationError
from quantir.compiler.backend.llvm.intrinsics import overloaded_intrinsic
from quantir.compiler.backend.llvm.types import I32, is_float, llvm_type


def _broadcast(op: vector.BroadcastOp, ctx: FunctionContext) -> None:
    """Insert into lane 0 of undef, then shuffle lane 0 to every lane."""
    b = ctx.builder
    t = llvm_type(op.vector.type)
    undef = ir.Constant(t, ir.Undefined)
    one = b.insert_element(undef, ctx.get(op.source), ir.Constant(I32, 0))
    zeros = ir.Constant(ir.VectorType(I32, t.count), [0] * t.count)
    ctx.set(op.results[0], b.shuffle_vector(one, undef, zeros))


def _extract(op: vector.ExtractOp, ctx: FunctionContext) -> None:
    if op.dynamic_position:
        raise TranslationError("vector.extract with dynamic positions is unsupported")
    (pos,) = op.static_position.get_values()
    ctx.set(op.results[0], ctx.builder.extract_element(ctx.get(op.vector), ir.Constant(I32, pos)))


def _insert(op: vector.InsertOp, ctx: FunctionContext) -> None:
    if op.dynamic_position:
        raise TranslationError("vector.insert with dynamic positions is unsupported")
    (pos,) = op.static_position.get_values()
    dest, source = ctx.get(op.dest), ctx.get(op.source)
    ctx.set(op.results[0], ctx.builder.insert_element(dest, source, ir.Constant(I32, pos)))


def _shuffle(op: vector.ShuffleOp, ctx: FunctionContext) -> None:
    mask = list(op.mask.get_values())
    mask_v = ir.Constant(ir.VectorType(I32, len(mask)), mask)
    ctx.set(op.results[0], ctx.builder.shuffle_vector(ctx.get(op.v1), ctx.get(op.v2), mask_v))


def _bitcast(op: vector.BitcastOp, ctx: FunctionContext) -> None:
    ctx.set(op.results[0], ctx.builder.bitcast(ctx.get(op.source), llvm_type(op.result.type)))


def _fma(op: vector.FMAOp, ctx: FunctionContext) -> None:
    t = llvm_type(op.res.type)
    fn = overloaded_intrinsic(ctx, "llvm.fma", t, [t, t, t])
    ctx.set(
        op.results[0], ctx.builder.call(fn, [ctx.get(op.lhs), ctx.get(op.rhs), ctx.get(op.acc)])
    )


_FLOAT_MAX = {
    "maximumf": "llvm.vector.reduce.fmaximum",  # NaN if any element is NaN
    "maxnumf": "llvm.vector.reduce.fmax",  # ignores NaN elements
}


def _reduction(op: vector.ReductionOp, ctx: FunctionContext) -> None:
    """<add>, and <maximumf> / <maxnumf> of floats; a float sum may reassociate
    (its fast-math flags, else `reassoc`)."""
    b = ctx.builder
    v = ctx.get(op.vector)
    t = v.type
    kind = op.kind.data
    if kind in _FLOAT_MAX and is_float(t) and op.acc is None:
        fn = overloaded_intrinsic(ctx, _FLOAT_MAX[kind], t.element, [t], suffix_types=[t])
        ctx.set(op.results[0], b.call(fn, [v]))
        return
    if kind != "add":
        raise TranslationError(f"vector.reduction <{kind}> is unsupported")
    if is_float(t):
        fn = overloaded_intrinsic(
            ctx, "llvm.vector.reduce.fadd", t.element, [t.element, t], suffix_types=[t]
        )
        start = ir.Constant(t.element, -0.0)
        result = b.call(fn, [start, v], fastmath=fast_flags(op) or ("reassoc",))
    else:
        fn = overloaded_intrinsic(ctx, "llvm.vector.reduce.add", t.element, [t], suffix_types=[t])
        result = b.call(fn, [v])
    if op.acc is not None:
        acc = ctx.get(op.acc)
        result = b.fadd(result, acc) if is_float(t) else b.add(result, acc)
    ctx.set(op.results[0], result)


VECTOR_HANDLERS: dict[type[Operation], OpHandler] = {
    vector.BroadcastOp: _broadcast,
    vector.ExtractOp: _extract,
    vector.InsertOp: _insert,
    vector.ShuffleOp: _shuffle,
    vector.BitcastOp: _bitcast,
    vector.FMAOp: _fma,
    vector.ReductionOp: _reduction,
}
