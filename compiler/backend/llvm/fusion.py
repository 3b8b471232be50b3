"""Groups of upstream ops that translate as one: the upstream form of `qrt.dot_u8i8`.

convert-qrt-to-upstream writes each byte dot product as plain upstream
arithmetic, exact by itself:

```mlir
%c = arith.extui %codes : vector<32xi8> to vector<32xi32>
%v = arith.extsi %values : vector<32xi8> to vector<32xi32>
%p = arith.muli %c, %v : vector<32xi32>
%p0 = vector.shuffle %p, %p [0, 4, ..., 28] : vector<32xi32>, vector<32xi32>
%s0 = arith.addi %acc, %p0 : vector<8xi32>
...                                    // lanes 4i+1, 4i+2, 4i+3
%s3 = arith.addi %s2, %p3 {qrt.dot_u8i8 = {code_bits = 4 : i64}} : vector<8xi32>
```

`plan_fusions` finds each such group (the marked `arith.addi` and the ten
ops feeding only it) before a function is translated; the translation then
emits nothing for the ten and the host's dot instructions for the mark
(`int_dot.emit_dot_u8i8`: `vpdpbusd`, `vpmaddubsw`, ...), exactly what
`qrt.dot_u8i8` translated to. A group that does not have this shape (an
edited or re-optimized module) is translated op by op: the same integers,
without the dot instructions.

The upstream form of `qrt.dot_u8i8_scaled` is such a group from a zero
accumulator, times `arith.extsi` of the 16-bit scales, added to the
accumulator by an `arith.addi` marked `qrt.dot_u8i8_scaled`
(`match_scaled_dot`); it translates to `int_dot.emit_scaled_dot_u8i8`.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.dialects import arith, func, vector
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    IntegerAttr,
    VectorType,
    i8,
    i16,
    i32,
)
from xdsl.ir import Operation, SSAValue

from quantir.compiler.backend.llvm.context import FunctionContext
from quantir.compiler.backend.llvm.int_dot import emit_dot_u8i8, emit_scaled_dot_u8i8
from quantir.compiler.backend.llvm.intrinsics import declare_intrinsic
from quantir.dialects.arith_vector import ExtSIOp, ExtUIOp
from quantir.dialects.qrt import DOT_U8I8_ATTR, DOT_U8I8_SCALED_ATTR

Fused = Callable[[Operation, FunctionContext], None] | None
"""What a fused op translates to: a handler for the group's root, None for its other ops."""


def _only_use(value: SSAValue, user: Operation) -> bool:
    return all(use.operation is user for use in value.uses) and bool(value.uses)


def _lane_mask(op: vector.ShuffleOp, lanes: int, j: int) -> bool:
    return list(op.mask.get_values()) == [4 * i + j for i in range(lanes)]


def match_dot(root: arith.AddiOp) -> tuple[list[Operation], SSAValue, SSAValue, SSAValue] | None:
    """(the group's other ops, acc, codes, values) of a marked `arith.addi`, or None."""
    acc_t = root.result.type
    if not isinstance(acc_t, VectorType) or acc_t.element_type != i32:
        return None
    lanes = acc_t.get_shape()[0]
    group: list[Operation] = []
    shuffles: list[vector.ShuffleOp] = []
    add: Operation = root
    for j in (3, 2, 1, 0):
        if not isinstance(add, arith.AddiOp):
            return None
        part = add.rhs.owner
        if not (
            isinstance(part, vector.ShuffleOp)
            and part.v1 is part.v2
            and _lane_mask(part, lanes, j)
            and _only_use(part.result, add)
        ):
            return None
        shuffles.append(part)
        group.append(part)
        if add is not root:
            group.append(add)
        if j:
            inner = add.lhs.owner
            if not isinstance(inner, arith.AddiOp) or not _only_use(add.lhs, add):
                return None
            add = inner
        else:
            acc = add.lhs
    products = shuffles[0].v1
    mul = products.owner
    if not (
        all(s.v1 is products for s in shuffles)
        and all(use.operation in shuffles for use in products.uses)
        and isinstance(mul, arith.MuliOp)
        and isinstance(mul.lhs.owner, ExtUIOp)
        and isinstance(mul.rhs.owner, ExtSIOp)
        and _only_use(mul.lhs, mul)
        and _only_use(mul.rhs, mul)
    ):
        return None
    codes, values = mul.lhs.owner.input, mul.rhs.owner.input
    bytes_t = VectorType(i8, [4 * lanes])
    if codes.type != bytes_t or values.type != bytes_t:
        return None
    group += [mul, mul.lhs.owner, mul.rhs.owner]
    return group, acc, codes, values


def _is_zero(value: SSAValue) -> bool:
    const = value.owner
    if not isinstance(const, arith.ConstantOp):
        return False
    attr = const.value
    return isinstance(attr, DenseIntOrFPElementsAttr) and all(v == 0 for v in attr.get_values())


def match_scaled_dot(
    root: arith.AddiOp,
) -> tuple[list[Operation], SSAValue, SSAValue, SSAValue, SSAValue] | None:
    """(the group's other ops, acc, codes, values, scales) of an `arith.addi` marked
    `qrt.dot_u8i8_scaled`, or None: acc + muli(a dot from zero, extsi(scales))."""
    scaled = root.rhs.owner
    if not (isinstance(scaled, arith.MuliOp) and _only_use(root.rhs, root)):
        return None
    dot, ext = scaled.lhs.owner, scaled.rhs.owner
    if not (
        isinstance(dot, arith.AddiOp)
        and isinstance(dot.attributes.get(DOT_U8I8_ATTR), DictionaryAttr)
        and _only_use(scaled.lhs, scaled)
        and isinstance(ext, ExtSIOp)
    ):
        return None
    found = match_dot(dot)
    lanes = root.result.type.get_shape()[0]
    if found is None or not _is_zero(found[1]) or ext.input.type != VectorType(i16, [lanes]):
        return None
    group, _, codes, values = found
    group += [dot, scaled]
    if _only_use(ext.result, scaled):
        group.append(ext)
    return group, root.lhs, codes, values, ext.input


def _scaled_handler(acc: SSAValue, codes: SSAValue, values: SSAValue, scales: SSAValue):
    def translate(op: Operation, ctx: FunctionContext) -> None:
        def intrinsic(name, ret, args):
            return declare_intrinsic(ctx, name, args, ret=ret)

        a, c, v, s = (ctx.get(x) for x in (acc, codes, values, scales))
        dot = emit_scaled_dot_u8i8(ctx.builder, intrinsic, a, c, v, s, ctx.target.features)
        ctx.set(op.results[0], dot)

    return translate


def _dot_handler(acc: SSAValue, codes: SSAValue, values: SSAValue, bits: int):
    def translate(op: Operation, ctx: FunctionContext) -> None:
        def intrinsic(name, ret, args):
            return declare_intrinsic(ctx, name, args, ret=ret)

        a, c, v = (ctx.get(x) for x in (acc, codes, values))
        dot = emit_dot_u8i8(ctx.builder, intrinsic, a, c, v, bits, ctx.target.features)
        ctx.set(op.results[0], dot)

    return translate


def plan_fusions(f: func.FuncOp) -> dict[Operation, Fused]:
    """The ops of `f` that translate as part of a group (see the module docstring)."""
    plan: dict[Operation, Fused] = {}
    for op in f.walk():
        mark = op.attributes.get(DOT_U8I8_SCALED_ATTR)
        if not isinstance(op, arith.AddiOp) or not isinstance(mark, DictionaryAttr):
            continue
        bits = mark.data.get("code_bits")
        if not isinstance(bits, IntegerAttr) or not 1 <= bits.value.data <= 7:
            continue
        scaled = match_scaled_dot(op)
        if scaled is None:
            continue
        group, acc, codes, values, scales = scaled
        for member in group:
            plan[member] = None
        plan[op] = _scaled_handler(acc, codes, values, scales)
    for op in f.walk():
        mark = op.attributes.get(DOT_U8I8_ATTR)
        if not isinstance(op, arith.AddiOp) or not isinstance(mark, DictionaryAttr) or op in plan:
            continue
        bits = mark.data.get("code_bits")
        if not isinstance(bits, IntegerAttr) or not 1 <= bits.value.data <= 8:
            continue
        found = match_dot(op)
        if found is None:
            continue
        group, acc, codes, values = found
        for member in group:
            plan[member] = None
        plan[op] = _dot_handler(acc, codes, values, bits.value.data)
    return plan
