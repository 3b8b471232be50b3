"""Vector-capable arith casts (a workaround for an xDSL 0.75 gap).

MLIR's arith casts (`extui`, `uitofp`, ...) accept vectors of
the scalar types they convert, elementwise. xDSL 0.75 defines them for
scalars only, which would stop the vectorized block unpacking from being
expressed as arith ops. This module defines drop-in replacements with the
same names and syntax that also accept vectors of matching shape, and
`VectorArith`, xDSL's arith dialect with those ops swapped in. quantir's
contexts load `VectorArith` under the name `arith`.

```mlir
%w = arith.extui %b : vector<32xi8> to vector<32xi32>
%f = arith.uitofp %w : vector<32xi32> to vector<32xf32>
```
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    AnyFloat,
    IntegerType,
    VectorType,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

__all__ = [
    "ExtSIOp",
    "ExtUIOp",
    "FPToSIOp",
    "FPToUIOp",
    "SIToFPOp",
    "TruncIOp",
    "UIToFPOp",
    "VectorArith",
]


def _element(t: Attribute) -> Attribute:
    return t.element_type if isinstance(t, VectorType) else t


def _shape(t: Attribute) -> tuple[int, ...] | None:
    return tuple(t.get_shape()) if isinstance(t, VectorType) else None


class _Cast(IRDLOperation):
    """An elementwise cast between scalars, or vectors of the same shape."""

    input = operand_def()
    result = result_def()

    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `to` type($result)"

    INPUT_KIND: ClassVar[str]
    RESULT_KIND: ClassVar[str]

    def __init__(self, op: SSAValue | Operation, target_type: Attribute):
        super().__init__(operands=[op], result_types=[target_type])

    @staticmethod
    def _is(kind: str, t: Attribute) -> bool:
        if kind == "int":
            return isinstance(t, IntegerType)
        return isinstance(t, AnyFloat)

    def verify_(self) -> None:
        src, dst = self.input.type, self.result.type
        if _shape(src) != _shape(dst):
            raise VerifyException(
                f"{self.name}: operand and result must both be scalars or vectors of the "
                f"same shape, got {src} and {dst}"
            )
        se, de = _element(src), _element(dst)
        if not self._is(self.INPUT_KIND, se):
            raise VerifyException(
                f"{self.name}: operand element type {se} is not {self.INPUT_KIND}"
            )
        if not self._is(self.RESULT_KIND, de):
            raise VerifyException(
                f"{self.name}: result element type {de} is not {self.RESULT_KIND}"
            )
        self._check_widths(se, de)

    def _check_widths(self, src: Attribute, dst: Attribute) -> None:
        pass


class _IntWidthCast(_Cast):
    INPUT_KIND: ClassVar[str] = "int"
    RESULT_KIND: ClassVar[str] = "int"
    GROWS: ClassVar[bool]

    def _check_widths(self, src: Attribute, dst: Attribute) -> None:
        assert isinstance(src, IntegerType) and isinstance(dst, IntegerType)
        ws, wd = src.width.data, dst.width.data
        if (wd > ws) != self.GROWS or ws == wd:
            need = "larger" if self.GROWS else "smaller"
            raise VerifyException(
                f"{self.name}: the result bit width must be {need} than the operand's "
                f"({ws} -> {wd})"
            )


@irdl_op_definition
class ExtUIOp(_IntWidthCast):
    name = "arith.extui"
    GROWS: ClassVar[bool] = True


@irdl_op_definition
class ExtSIOp(_IntWidthCast):
    name = "arith.extsi"
    GROWS: ClassVar[bool] = True


@irdl_op_definition
class TruncIOp(_IntWidthCast):
    name = "arith.trunci"
    GROWS: ClassVar[bool] = False


@irdl_op_definition
class UIToFPOp(_Cast):
    name = "arith.uitofp"
    INPUT_KIND: ClassVar[str] = "int"
    RESULT_KIND: ClassVar[str] = "float"


@irdl_op_definition
class SIToFPOp(_Cast):
    name = "arith.sitofp"
    INPUT_KIND: ClassVar[str] = "int"
    RESULT_KIND: ClassVar[str] = "float"


@irdl_op_definition
class FPToSIOp(_Cast):
    name = "arith.fptosi"
    INPUT_KIND: ClassVar[str] = "float"
    RESULT_KIND: ClassVar[str] = "int"


@irdl_op_definition
class FPToUIOp(_Cast):
    name = "arith.fptoui"
    INPUT_KIND: ClassVar[str] = "float"
    RESULT_KIND: ClassVar[str] = "int"


_REPLACED: dict[type[Operation], type[Operation]] = {
    arith.ExtUIOp: ExtUIOp,
    arith.ExtSIOp: ExtSIOp,
    arith.TruncIOp: TruncIOp,
    arith.UIToFPOp: UIToFPOp,
    arith.SIToFPOp: SIToFPOp,
    arith.FPToSIOp: FPToSIOp,
    arith.FPToUIOp: FPToUIOp,
}

VectorArith = Dialect(
    "arith",
    [_REPLACED.get(op, op) for op in arith.Arith.operations],
    list(arith.Arith.attributes),
    list(arith.Arith._interfaces),  # noqa: SLF001 (keep constant materialization)
)
"""xDSL's arith dialect with vector-capable casts."""
