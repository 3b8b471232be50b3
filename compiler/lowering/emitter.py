"""A small IR builder for lowering passes: typed arithmetic, memory and loops.

Lowering code reads like the computation it emits: `e.andi(q, 15)` builds an
`arith.constant` of q's type (a splat when q is a vector) and an `arith.andi`.
Every op is appended at the emitter's insertion point (the end of a block, or
just before an anchor op).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

from xdsl.dialects import arith, math, memref, scf, vector
from xdsl.dialects.builtin import (
    BoolAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    VectorType,
    f32,
    i64,
)
from xdsl.dialects.utils.fast_math import FastMathFlag
from xdsl.ir import Attribute, Block, Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from quantir.dialects import arith_vector
from quantir.dialects.qrt import ALIGN_ATTR, DotU8I8Op, DotU8I8ScaledOp

Value = SSAValue
Operand = SSAValue | int | float

index = IndexType()

# Fast-math flags that let LLVM contract mul+add into FMA and reassociate
# reductions. Used only where the result is checked within a bound (matmuls),
# never in dequantize, whose output must be bit-identical to ggml.
REDUCTION_FLAGS = arith.FastMathFlagsAttr([FastMathFlag.REASSOC, FastMathFlag.ALLOW_CONTRACT])


def element_type(t: Attribute) -> Attribute:
    return t.element_type if isinstance(t, VectorType) else t


def with_element(t: Attribute, elem: Attribute) -> Attribute:
    """`t` with its element type replaced (vector shape kept)."""
    if isinstance(t, VectorType):
        return VectorType(elem, t.get_shape())
    return elem


def vector_of(elem: Attribute, lanes: int) -> Attribute:
    """A vector type of `lanes` elements, or the scalar itself for one lane."""
    return VectorType(elem, [lanes]) if lanes > 1 else elem


class Emitter:
    """Builds ops at an insertion point."""

    def __init__(self, insert_point: InsertPoint):
        self.ip = insert_point

    @staticmethod
    def at_end(block: Block) -> Emitter:
        return Emitter(InsertPoint.at_end(block))

    @staticmethod
    def before(op: Operation) -> Emitter:
        return Emitter(InsertPoint.before(op))

    def op(self, op: Operation) -> Operation:
        Rewriter.insert_op(op, self.ip)
        return op

    def v(self, op: Operation) -> Value:
        """Insert `op` and return its single result."""
        self.op(op)
        return op.results[0]

    # -- constants -------------------------------------------------------

    def const(self, value: int | float, t: Attribute) -> Value:
        elem = element_type(t)
        if isinstance(t, VectorType):
            attr = DenseIntOrFPElementsAttr.from_list(t, [value])
            return self.v(arith.ConstantOp(attr, t))
        if isinstance(elem, IntegerType | IndexType):
            return self.v(arith.ConstantOp(IntegerAttr(int(value), elem, truncate_bits=True)))
        return self.v(arith.ConstantOp(FloatAttr(float(value), elem)))

    def index(self, value: int) -> Value:
        return self.const(value, index)

    def f32_const(self, value: float) -> Value:
        return self.const(value, f32)

    def vconst(self, values: Sequence[int | float], elem: Attribute) -> Value:
        t = VectorType(elem, [len(values)])
        return self.v(arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(t, list(values)), t))

    def _as_value(self, x: Operand, like: Value) -> Value:
        return x if isinstance(x, SSAValue) else self.const(x, like.type)

    # -- integer arithmetic ---------------------------------------------------

    def _ibin(self, cls: type[Operation], a: Operand, b: Operand) -> Value:
        if not isinstance(a, SSAValue):
            assert isinstance(b, SSAValue)
            a = self._as_value(a, b)
        return self.v(cls(a, self._as_value(b, a)))  # type: ignore[call-arg]

    def add(self, a: Operand, b: Operand) -> Value:
        if isinstance(b, int) and b == 0 and isinstance(a, SSAValue):
            return a
        return self._ibin(arith.AddiOp, a, b)

    def sub(self, a: Operand, b: Operand) -> Value:
        if isinstance(b, int) and b == 0 and isinstance(a, SSAValue):
            return a
        return self._ibin(arith.SubiOp, a, b)

    def mul(self, a: Operand, b: Operand) -> Value:
        if isinstance(b, int) and b == 1 and isinstance(a, SSAValue):
            return a
        return self._ibin(arith.MuliOp, a, b)

    def divui(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.DivUIOp, a, b)

    def remui(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.RemUIOp, a, b)

    def andi(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.AndIOp, a, b)

    def ori(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.OrIOp, a, b)

    def xori(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.XOrIOp, a, b)

    def shrui(self, a: Operand, b: Operand) -> Value:
        if isinstance(b, int) and b == 0 and isinstance(a, SSAValue):
            return a
        return self._ibin(arith.ShRUIOp, a, b)

    def shrsi(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.ShRSIOp, a, b)

    def shli(self, a: Operand, b: Operand) -> Value:
        if isinstance(b, int) and b == 0 and isinstance(a, SSAValue):
            return a
        return self._ibin(arith.ShLIOp, a, b)

    def minui(self, a: Operand, b: Operand) -> Value:
        return self._ibin(arith.MinUIOp, a, b)

    def cmpi(self, pred: str, a: Operand, b: Operand) -> Value:
        if not isinstance(a, SSAValue):
            assert isinstance(b, SSAValue)
            a = self._as_value(a, b)
        return self.v(arith.CmpiOp(a, self._as_value(b, a), pred))

    def select(self, cond: Value, a: Value, b: Value) -> Value:
        return self.v(arith.SelectOp(cond, a, b))

    # -- casts ------------------------------------------------------------

    def _cast(self, cls: type[Operation], x: Value, elem: Attribute) -> Value:
        return self.v(cls(x, with_element(x.type, elem)))  # type: ignore[call-arg]

    def extui(self, x: Value, elem: Attribute) -> Value:
        return self._cast(arith_vector.ExtUIOp, x, elem)

    def extsi(self, x: Value, elem: Attribute) -> Value:
        return self._cast(arith_vector.ExtSIOp, x, elem)

    def trunci(self, x: Value, elem: Attribute) -> Value:
        return self._cast(arith_vector.TruncIOp, x, elem)

    def uitofp(self, x: Value, elem: Attribute = f32) -> Value:
        return self._cast(arith_vector.UIToFPOp, x, elem)

    def sitofp(self, x: Value, elem: Attribute = f32) -> Value:
        return self._cast(arith_vector.SIToFPOp, x, elem)

    def extf(self, x: Value, elem: Attribute = f32) -> Value:
        return self.v(arith.ExtFOp(x, with_element(x.type, elem)))

    def bitcast(self, x: Value, t: Attribute) -> Value:
        if isinstance(x.type, VectorType):
            return self.v(vector.BitcastOp(x, t))
        return self.v(arith.BitcastOp(x, t))

    def index_cast(self, x: Value, t: Attribute) -> Value:
        return self.v(arith.IndexCastOp(x, t))

    # -- float arithmetic ---------------------------------------------------

    def _fbin(self, cls, a: Operand, b: Operand, fast: bool) -> Value:
        if not isinstance(a, SSAValue):
            assert isinstance(b, SSAValue)
            a = self._as_value(a, b)
        flags = REDUCTION_FLAGS if fast else None
        return self.v(cls(a, self._as_value(b, a), flags))

    def addf(self, a: Operand, b: Operand, fast: bool = False) -> Value:
        return self._fbin(arith.AddfOp, a, b, fast)

    def subf(self, a: Operand, b: Operand, fast: bool = False) -> Value:
        return self._fbin(arith.SubfOp, a, b, fast)

    def mulf(self, a: Operand, b: Operand, fast: bool = False) -> Value:
        return self._fbin(arith.MulfOp, a, b, fast)

    def divf(self, a: Operand, b: Operand) -> Value:
        return self._fbin(arith.DivfOp, a, b, False)

    def absf(self, x: Value) -> Value:
        return self.v(math.AbsFOp(x))

    def cmpf(self, pred: str, a: Operand, b: Operand) -> Value:
        if not isinstance(a, SSAValue):
            assert isinstance(b, SSAValue)
            a = self._as_value(a, b)
        return self.v(arith.CmpfOp(a, self._as_value(b, a), pred))

    def fma(self, a: Value, b: Value, acc: Value) -> Value:
        """a*b + acc, contracted into one FMA (vectors: vector.fma)."""
        if isinstance(acc.type, VectorType):
            return self.v(vector.FMAOp(a, b, acc))
        return self.addf(acc, self.mulf(a, b, fast=True), fast=True)

    # -- vectors ----------------------------------------------------------

    def broadcast(self, x: Value, t: Attribute) -> Value:
        if not isinstance(t, VectorType) or x.type == t:
            return x
        return self.v(vector.BroadcastOp(x, t))

    def shuffle(self, a: Value, b: Value, mask: Sequence[int]) -> Value:
        """Lane i of the result is lane mask[i] of a ++ b (as many lanes as the mask)."""
        assert isinstance(a.type, VectorType)
        t = VectorType(a.type.element_type, [len(mask)])
        mask_attr = DenseArrayBase.from_list(i64, list(mask))
        return self.v(vector.ShuffleOp(a, b, mask_attr, result_type=t))

    def extract(self, v: Value, position: int) -> Value:
        assert isinstance(v.type, VectorType)
        return self.v(vector.ExtractOp(v, [position], v.type.element_type))

    def reduce_add(self, v: Value) -> Value:
        """Sum of a vector's elements (reassociation allowed)."""
        if not isinstance(v.type, VectorType):
            return v
        op = vector.ReductionOp.create(
            operands=[v],
            result_types=[v.type.element_type],
            properties={
                "kind": vector.CombiningKindAttr(vector.CombiningKindFlag.ADD),
                "fastmath": arith.FastMathFlagsAttr("fast"),
            },
        )
        return self.v(op)

    def reduce_max(self, v: Value) -> Value:
        """The largest element of a float vector; NaN if any element is NaN."""
        op = vector.ReductionOp.create(
            operands=[v],
            result_types=[v.type.element_type],
            properties={"kind": vector.CombiningKindAttr(vector.CombiningKindFlag.MAXIMUMF)},
        )
        return self.v(op)

    def dot_u8i8(self, acc: Value, codes: Value, values: Value, code_bits: int) -> Value:
        """acc + dot products of unsigned `codes` and signed `values`, four bytes per lane."""
        return self.v(DotU8I8Op(acc, codes, values, code_bits))

    def dot_u8i8_scaled(
        self, acc: Value, codes: Value, values: Value, scales: Value, code_bits: int
    ) -> Value:
        """acc + each lane's dot of `codes` and `values` times its i16 scale."""
        return self.v(DotU8I8ScaledOp(acc, codes, values, scales, code_bits))

    # -- memory -----------------------------------------------------------

    def load(self, mem: Value, indices: Sequence[Value]) -> Value:
        return self.v(memref.LoadOp.get(mem, list(indices)))

    def store(self, value: Value, mem: Value, indices: Sequence[Value]) -> None:
        self.op(memref.StoreOp.get(value, mem, list(indices)))

    def vload(self, mem: Value, indices: Sequence[Value], lanes: int, align: int = 0) -> Value:
        """`lanes` contiguous elements along the last dimension (a scalar for 1).

        `align`: the byte alignment the caller guarantees on the GPU (`qrt.align`).
        """
        mt = mem.type
        assert isinstance(mt, MemRefType)
        if lanes == 1:
            return self.load(mem, indices)
        op = vector.LoadOp(mem, list(indices), VectorType(mt.element_type, [lanes]))
        _set_align(op, align)
        return self.v(op)

    def vstore(
        self,
        value: Value,
        mem: Value,
        indices: Sequence[Value],
        nontemporal: bool = False,
        align: int = 0,
    ) -> None:
        if not isinstance(value.type, VectorType):
            self.store(value, mem, indices)
            return
        nt = BoolAttr.from_bool(True) if nontemporal else None
        op = vector.StoreOp(value, mem, list(indices), nt)
        _set_align(op, align)
        self.op(op)

    def dim(self, mem: Value, i: int) -> Value:
        mt = mem.type
        assert isinstance(mt, MemRefType)
        size = mt.get_shape()[i]
        if size >= 0:
            return self.index(size)
        return self.v(memref.DimOp(mem, self.index(i)))

    # -- loops --------------------------------------------------------------

    def for_(
        self,
        lb: Operand,
        ub: Operand,
        step: Operand,
        body: Callable[[Emitter, Value, Sequence[Value]], Sequence[Value] | None],
        iter_args: Sequence[Value] = (),
        attrs: dict[str, Attribute] | None = None,
    ) -> Sequence[Value]:
        """scf.for; `body(e, iv, carried)` returns the values to yield."""
        lb_v = lb if isinstance(lb, SSAValue) else self.index(int(lb))
        ub_v = ub if isinstance(ub, SSAValue) else self.index(int(ub))
        step_v = step if isinstance(step, SSAValue) else self.index(int(step))
        block = Block(arg_types=[index, *[a.type for a in iter_args]])
        inner = Emitter.at_end(block)
        yielded = body(inner, block.args[0], block.args[1:]) or ()
        inner.op(scf.YieldOp(*yielded))
        loop = scf.ForOp(lb_v, ub_v, step_v, list(iter_args), block)
        if attrs:
            loop.attributes.update(attrs)
        self.op(loop)
        return loop.results

    def parallel(
        self,
        lbs: Sequence[Operand],
        ubs: Sequence[Operand],
        body: Callable[[Emitter, Sequence[Value]], None],
        attrs: dict[str, Attribute] | None = None,
    ) -> scf.ParallelOp:
        """scf.parallel with unit steps; `body(e, ivs)` emits the loop body."""
        lb_vs = [x if isinstance(x, SSAValue) else self.index(int(x)) for x in lbs]
        ub_vs = [x if isinstance(x, SSAValue) else self.index(int(x)) for x in ubs]
        steps = [self.index(1) for _ in lbs]
        block = Block(arg_types=[index] * len(lbs))
        inner = Emitter.at_end(block)
        body(inner, block.args)
        inner.op(scf.ReduceOp())
        loop = scf.ParallelOp(lb_vs, ub_vs, steps, [block])
        if attrs:
            loop.attributes.update(attrs)
        self.op(loop)
        return loop

    @contextmanager
    def if_(self, cond: Value):
        """scf.if without results; the body is emitted inside the `with`."""
        block = Block()
        inner = Emitter.at_end(block)
        yield inner
        inner.op(scf.YieldOp())
        self.op(scf.IfOp(cond, [], [block]))


def _set_align(op: Operation, align: int) -> None:
    """Mark a vector access `align`-byte aligned on the GPU (wider than its element)."""
    mt = op.operands[0].type if isinstance(op, vector.LoadOp) else op.operands[1].type
    assert isinstance(mt, MemRefType)
    elem = mt.element_type
    width = elem.bitwidth // 8 if hasattr(elem, "bitwidth") else 1
    if align > width:
        op.attributes[ALIGN_ATTR] = IntegerAttr(align, i64)
