"""The `qnn` dialect: the float graph ops around quantized matmuls.

Graphs need a few float ops beside `quant.qmatmul`: a float matmul for
unquantized weights, and elementwise add/mul (bias, residual, scaling). Each
op has a value form on tensors and a destination-passing form on memrefs
(`outs(%buffer)`), which bufferization produces.

```mlir
%h = qnn.matmul %x, %w : (tensor<?x4096xf32>, tensor<4096x1024xf32>) -> tensor<?x1024xf32>
%y = qnn.add %h, %bias : (tensor<?x1024xf32>, tensor<1024xf32>) -> tensor<?x1024xf32>
```

Elementwise ops broadcast like numpy, restricted to what graphs need: the
lower-rank operand's shape must equal the trailing dimensions of the other
(dimensions of size 1 broadcast), and the result has the larger shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from xdsl.dialects.builtin import DYNAMIC_INDEX, Float32Type, MemRefType, TensorType
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_result_def,
    traits_def,
)
from xdsl.parser import Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from quantir.dialects.broadcasting import BroadcastError, broadcast_shapes
from quantir.dialects.destination_style import DestinationStyleOp, DimSolver, WritesOutBuffer

ShapedType = TensorType | MemRefType
D = TypeVar("D")


def _fmt(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape) + "]"


def _compatible(a: int, b: int) -> bool:
    return a == b or a == DYNAMIC_INDEX or b == DYNAMIC_INDEX


def _merge_dynamic(a: int, b: int, from_end: int) -> int | None:
    """Two unequal sizes agree when one is dynamic; the result takes the static one."""
    if a == DYNAMIC_INDEX:
        return b
    return a if b == DYNAMIC_INDEX else None


def broadcast_shape(what: str, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The result shape of an elementwise op, or a VerifyException naming the mismatch."""
    try:
        return broadcast_shapes(a, b, _merge_dynamic)
    except BroadcastError as e:
        if e.kind == "stretch":
            dim = max(len(a), len(b)) + e.from_end
            reason = f"dimension {dim} of the larger operand is 1"
        else:
            reason = "trailing dimensions must be equal or 1"
        raise VerifyException(
            f"{what}: cannot broadcast {_fmt(a)} with {_fmt(b)}: {reason}"
        ) from None


class _BinaryGraphOp(DestinationStyleOp):
    """`OP %a, %b [outs(%o)] [attrs] : (types) -> types` on f32 tensors or memrefs."""

    lhs = operand_def(TensorType | MemRefType)
    rhs = operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    traits = traits_def(WritesOutBuffer())

    def __init__(
        self,
        lhs: SSAValue | Operation,
        rhs: SSAValue | Operation,
        result_type: Attribute | None = None,
        out: SSAValue | Operation | None = None,
    ):
        super().__init__(
            operands=[lhs, rhs, [out] if out is not None else []],
            result_types=[[result_type] if result_type is not None else []],
        )

    @classmethod
    def parse(cls, parser: Parser) -> _BinaryGraphOp:
        def parse_inputs() -> list[UnresolvedOperand]:
            lhs = parser.parse_unresolved_operand()
            parser.parse_punctuation(",")
            return [lhs, parser.parse_unresolved_operand()]

        parsed = cls.parse_destination(parser, parse_inputs)
        lhs, rhs = parsed.inputs
        op = cls(lhs, rhs, parsed.result_type, parsed.out)
        op.attributes.update(parsed.attributes)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        self.print_destination(printer)

    def on_buffers(self, inputs: Sequence[SSAValue], out: SSAValue) -> _BinaryGraphOp:
        lhs, rhs = inputs
        return type(self)(lhs, rhs, None, out)

    def _types(self) -> tuple[ShapedType, ShapedType, ShapedType]:
        rt = self.destination_type()
        for name, t in (("lhs", self.lhs.type), ("rhs", self.rhs.type), ("result", rt)):
            assert isinstance(t, ShapedType)
            if not isinstance(t.element_type, Float32Type):
                raise VerifyException(
                    f"{self.name}: {name} must have element type f32, got {t.element_type}"
                )
        return self.lhs.type, self.rhs.type, rt  # type: ignore[return-value]


class _ElementwiseOp(_BinaryGraphOp):
    def infer_result_dims(self, operand_dims: Sequence[list[D]], solver: DimSolver[D]) -> list[D]:
        lhs, rhs = operand_dims
        rank = max(len(lhs), len(rhs))

        def agree(a: D, b: D, from_end: int) -> D:
            what = f"{self.name}: dimension {rank + from_end} of the operands differs"
            return solver.unify([a, b], what)

        return list(broadcast_shapes(lhs, rhs, agree))

    def verify_(self) -> None:
        a, b, r = self._types()
        expected = broadcast_shape(self.name, a.get_shape(), b.get_shape())
        got = r.get_shape()
        if len(got) != len(expected) or not all(
            _compatible(x, y) for x, y in zip(got, expected, strict=True)
        ):
            raise VerifyException(
                f"{self.name}: result shape {_fmt(got)} does not match the broadcast "
                f"shape {_fmt(expected)} of the operands"
            )


@irdl_op_definition
class AddOp(_ElementwiseOp):
    """Elementwise sum with trailing broadcasting.

    ```mlir
    %y = qnn.add %h, %bias : (tensor<?x1024xf32>, tensor<1024xf32>) -> tensor<?x1024xf32>
    ```
    """

    name = "qnn.add"


@irdl_op_definition
class MulOp(_ElementwiseOp):
    """Elementwise product with trailing broadcasting.

    ```mlir
    %y = qnn.mul %a, %b : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
    ```
    """

    name = "qnn.mul"


@irdl_op_definition
class MatmulOp(_BinaryGraphOp):
    """Float matmul `x @ w`: x is [..., K], w is [K, N], the result [..., N].

    ```mlir
    %y = qnn.matmul %x, %w : (tensor<?x4096xf32>, tensor<4096x1024xf32>) -> tensor<?x1024xf32>
    ```
    """

    name = "qnn.matmul"

    def infer_result_dims(self, operand_dims: Sequence[list[D]], solver: DimSolver[D]) -> list[D]:
        x, w = operand_dims
        return [*x[:-1], w[1]]

    def verify_(self) -> None:
        x, w, r = self._types()
        xs, ws, rs = x.get_shape(), w.get_shape(), r.get_shape()
        what = self.name
        if len(xs) < 1:
            raise VerifyException(f"{what}: x must be [..., K], got a scalar")
        if len(ws) != 2:
            raise VerifyException(f"{what}: w must be [K, N], got {_fmt(ws)}")
        if xs[-1] == DYNAMIC_INDEX or ws[0] == DYNAMIC_INDEX:
            raise VerifyException(f"{what}: K must be static, got x {_fmt(xs)} and w {_fmt(ws)}")
        if xs[-1] != ws[0]:
            raise VerifyException(
                f"{what}: x is [..., {xs[-1]}] but w is [{ws[0]}, N]: K must match"
            )
        expected = (*xs[:-1], ws[1])
        if len(rs) != len(expected) or not all(
            _compatible(a, b) for a, b in zip(rs, expected, strict=True)
        ):
            raise VerifyException(
                f"{what}: result shape {_fmt(rs)} does not match the expected {_fmt(expected)}"
            )


Qnn = Dialect("qnn", [MatmulOp, AddOp, MulOp], [])
