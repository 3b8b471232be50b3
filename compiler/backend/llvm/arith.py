"""Scalar and elementwise arithmetic: arith (with quantir's vector casts) and math.

Every op here works on scalars and on 1-D vectors alike. Floating-point ops
carry the op's `fastmath` flags, and none otherwise (dequantize stays
bit-identical); integer comparisons and min/max pick signed or unsigned LLVM
predicates from the op.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, FloatAttr, IntegerAttr
from xdsl.ir import Attribute, Operation

from quantir.compiler.backend.llvm.context import FunctionContext, OpHandler, TranslationError
from quantir.compiler.backend.llvm.intrinsics import overloaded_intrinsic
from quantir.compiler.backend.llvm.types import llvm_type
from quantir.dialects import arith_vector

_ALL_FAST = {"reassoc", "nnan", "ninf", "nsz", "arcp", "contract", "afn"}


def fast_flags(op: Operation) -> tuple[str, ...]:
    """The op's fast-math flags as llvmlite spells them (all of them: `fast`)."""
    fm = op.properties.get("fastmath") or op.attributes.get("fastmath")
    if fm is None:
        return ()
    flags = tuple(sorted(f.value if hasattr(f, "value") else str(f) for f in fm.data))
    return ("fast",) if set(flags) >= _ALL_FAST else flags


def _result_type(op: Operation) -> ir.Type:
    return llvm_type(op.results[0].type)


def constant_value(attr: Attribute, t: ir.Type) -> ir.Constant:
    if isinstance(attr, IntegerAttr):
        return ir.Constant(t, attr.value.data)
    if isinstance(attr, FloatAttr):
        return ir.Constant(t, attr.value.data)
    if isinstance(attr, DenseIntOrFPElementsAttr):
        values = list(attr.get_values())
        if not isinstance(t, ir.VectorType):
            raise TranslationError("dense constants must be vectors")
        if len(values) == 1:
            values = values * t.count
        return ir.Constant(t, values)
    raise TranslationError(f"unsupported constant {attr}")


def _constant(op: arith.ConstantOp, ctx: FunctionContext) -> None:
    ctx.set(op.results[0], constant_value(op.value, llvm_type(op.result.type)))


# Each table maps an op to the IRBuilder method that emits it.
_INT_BINARY: dict[type[Operation], Callable[[ir.IRBuilder], Callable]] = {
    arith.AddiOp: lambda b: b.add,
    arith.SubiOp: lambda b: b.sub,
    arith.MuliOp: lambda b: b.mul,
    arith.DivUIOp: lambda b: b.udiv,
    arith.DivSIOp: lambda b: b.sdiv,
    arith.RemUIOp: lambda b: b.urem,
    arith.RemSIOp: lambda b: b.srem,
    arith.AndIOp: lambda b: b.and_,
    arith.OrIOp: lambda b: b.or_,
    arith.XOrIOp: lambda b: b.xor,
    arith.ShLIOp: lambda b: b.shl,
    arith.ShRUIOp: lambda b: b.lshr,
    arith.ShRSIOp: lambda b: b.ashr,
}

_FLOAT_BINARY: dict[type[Operation], Callable[[ir.IRBuilder], Callable]] = {
    arith.AddfOp: lambda b: b.fadd,
    arith.SubfOp: lambda b: b.fsub,
    arith.MulfOp: lambda b: b.fmul,
    arith.DivfOp: lambda b: b.fdiv,
}

# xDSL's arith casts take scalars only; quantir's arith_vector ops print the
# same and also take vectors (see quantir.dialects.arith_vector).
_CASTS: dict[type[Operation], Callable[[ir.IRBuilder], Callable]] = {
    arith_vector.ExtUIOp: lambda b: b.zext,
    arith_vector.ExtSIOp: lambda b: b.sext,
    arith_vector.TruncIOp: lambda b: b.trunc,
    arith_vector.UIToFPOp: lambda b: b.uitofp,
    arith_vector.SIToFPOp: lambda b: b.sitofp,
    arith_vector.FPToSIOp: lambda b: b.fptosi,
    arith_vector.FPToUIOp: lambda b: b.fptoui,
    arith.ExtUIOp: lambda b: b.zext,
    arith.ExtSIOp: lambda b: b.sext,
    arith.TruncIOp: lambda b: b.trunc,
    arith.UIToFPOp: lambda b: b.uitofp,
    arith.SIToFPOp: lambda b: b.sitofp,
    arith.FPToSIOp: lambda b: b.fptosi,
    arith.FPToUIOp: lambda b: b.fptoui,
    arith.ExtFOp: lambda b: b.fpext,
    arith.TruncFOp: lambda b: b.fptrunc,
}


def _int_binary(op: Operation, ctx: FunctionContext) -> None:
    emit = _INT_BINARY[type(op)](ctx.builder)
    ctx.set(op.results[0], emit(ctx.get(op.operands[0]), ctx.get(op.operands[1])))


def _float_binary(op: Operation, ctx: FunctionContext) -> None:
    emit = _FLOAT_BINARY[type(op)](ctx.builder)
    lhs, rhs = ctx.get(op.operands[0]), ctx.get(op.operands[1])
    ctx.set(op.results[0], emit(lhs, rhs, flags=fast_flags(op)))


def _cast(op: Operation, ctx: FunctionContext) -> None:
    emit = _CASTS[type(op)](ctx.builder)
    ctx.set(op.results[0], emit(ctx.get(op.operands[0]), _result_type(op)))


def _bitcast(op: arith.BitcastOp, ctx: FunctionContext) -> None:
    ctx.set(op.results[0], ctx.builder.bitcast(ctx.get(op.input), _result_type(op)))


def _index_cast(op: arith.IndexCastOp, ctx: FunctionContext) -> None:
    """index <-> iN: sign-extend, truncate, or nothing at equal widths."""
    b, rt, src = ctx.builder, _result_type(op), ctx.get(op.input)
    sw, dw = src.type.width, rt.width
    ctx.set(op.results[0], src if sw == dw else (b.sext(src, rt) if dw > sw else b.trunc(src, rt)))


def _negf(op: arith.NegfOp, ctx: FunctionContext) -> None:
    ctx.set(op.results[0], ctx.builder.fneg(ctx.get(op.operand), flags=fast_flags(op)))


# arith.cmpi's predicate numbers, in order, as (LLVM operator, signed).
_CMPI_PREDICATES = [
    ("==", False),  # eq
    ("!=", False),  # ne
    ("<", True),  # slt
    ("<=", True),  # sle
    (">", True),  # sgt
    (">=", True),  # sge
    ("<", False),  # ult
    ("<=", False),  # ule
    (">", False),  # ugt
    (">=", False),  # uge
]

# arith.cmpf's predicate numbers as (LLVM operator, ordered); 0 and 15 (false,
# true) are not translated.
_CMPF_PREDICATES = {
    1: ("==", True),  # oeq
    2: (">", True),  # ogt
    3: (">=", True),  # oge
    4: ("<", True),  # olt
    5: ("<=", True),  # ole
    6: ("!=", True),  # one
    7: ("ord", True),
    8: ("==", False),  # ueq
    9: (">", False),  # ugt
    10: (">=", False),  # uge
    11: ("<", False),  # ult
    12: ("<=", False),  # ule
    13: ("!=", False),  # une
    14: ("uno", False),
}


def _cmpi(op: arith.CmpiOp, ctx: FunctionContext) -> None:
    pred, signed = _CMPI_PREDICATES[op.predicate.value.data]
    cmp = ctx.builder.icmp_signed if signed else ctx.builder.icmp_unsigned
    ctx.set(op.results[0], cmp(pred, ctx.get(op.lhs), ctx.get(op.rhs)))


def _cmpf(op: arith.CmpfOp, ctx: FunctionContext) -> None:
    pred, ordered = _CMPF_PREDICATES[op.predicate.value.data]
    cmp = ctx.builder.fcmp_ordered if ordered else ctx.builder.fcmp_unordered
    ctx.set(op.results[0], cmp(pred, ctx.get(op.lhs), ctx.get(op.rhs)))


def _select(op: arith.SelectOp, ctx: FunctionContext) -> None:
    ctx.set(op.results[0], ctx.builder.select(ctx.get(op.cond), ctx.get(op.lhs), ctx.get(op.rhs)))


# Integer min/max as (comparison, signed) followed by a select.
_INT_MIN_MAX = {
    arith.MinUIOp: ("<", False),
    arith.MinSIOp: ("<", True),
    arith.MaxUIOp: (">", False),
    arith.MaxSIOp: (">", True),
}


def _int_min_max(op: Operation, ctx: FunctionContext) -> None:
    b = ctx.builder
    a, c = ctx.get(op.lhs), ctx.get(op.rhs)
    pred, signed = _INT_MIN_MAX[type(op)]
    cond = (b.icmp_signed if signed else b.icmp_unsigned)(pred, a, c)
    ctx.set(op.results[0], b.select(cond, a, c))


# Ops that are one overloaded LLVM intrinsic over their operands.
_INTRINSIC_OPS: dict[type[Operation], str] = {
    arith.MaximumfOp: "llvm.maximum",
    arith.MinimumfOp: "llvm.minimum",
    arith.MaxnumfOp: "llvm.maxnum",
    arith.MinnumfOp: "llvm.minnum",
    math.AbsFOp: "llvm.fabs",
    math.SqrtOp: "llvm.sqrt",
    math.FmaOp: "llvm.fma",
}


def _intrinsic_op(op: Operation, ctx: FunctionContext) -> None:
    rt = _result_type(op)
    operands = [ctx.get(v) for v in op.operands]
    fn = overloaded_intrinsic(ctx, _INTRINSIC_OPS[type(op)], rt, [rt] * len(operands))
    ctx.set(op.results[0], ctx.builder.call(fn, operands))


ARITH_HANDLERS: dict[type[Operation], OpHandler] = {
    arith.ConstantOp: _constant,
    **{op: _int_binary for op in _INT_BINARY},
    **{op: _float_binary for op in _FLOAT_BINARY},
    **{op: _cast for op in _CASTS},
    arith.BitcastOp: _bitcast,
    arith.IndexCastOp: _index_cast,
    arith.NegfOp: _negf,
    arith.CmpiOp: _cmpi,
    arith.CmpfOp: _cmpf,
    arith.SelectOp: _select,
    **{op: _int_min_max for op in _INT_MIN_MAX},
    **{op: _intrinsic_op for op in _INTRINSIC_OPS},
}
