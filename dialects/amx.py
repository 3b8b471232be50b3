"""The `amx` dialect: Intel AMX tile operations, as upstream MLIR spells them.

xDSL has no AMX dialect, so quantir defines the subset its CPU kernels use,
with upstream MLIR's names, types and syntax (so the IR quantir prints is
accepted by upstream `mlir-opt`). A tile is a 2-D register of at most 16
rows of 64 bytes; `!amx.tile<16x64xi8>` is 16 rows of 64 bytes,
`!amx.tile<16x16xi32>` 16 rows of 16 32-bit accumulators. There are no tile
registers in the IR: tiles are SSA values, and the backend lets LLVM assign
registers and emit the tile configuration (`ldtilecfg`) of each function.

The integer product multiplies an `M x 4K` byte tile by a `K x 4N` byte tile
in VNNI layout (row r holds the 4 bytes of rows 4r..4r+3 of the right-hand
matrix for each of its N columns) into `M x N` int32 accumulators:

```mlir
%acc = amx.tile_zero : !amx.tile<16x16xi32>
%a = amx.tile_load %w[%r, %k] : memref<16x4096xi8> into !amx.tile<16x32xi8>
%b = amx.tile_load %x[%t, %c0] : memref<?x64xi8> into !amx.tile<8x64xi8>
%c = amx.tile_muli %a zext, %b, %acc : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
amx.tile_store %out[%c0, %c0], %c : memref<16x16xi32>, !amx.tile<16x16xi32>
```

Using these needs a CPU with AMX-TILE and AMX-INT8 and, on Linux, the
process's permission to use tile state (`compiler/backend/cpu_codegen.py`
asks for it); the lowering only emits them when both are there.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    ArrayAttr,
    IndexType,
    IntAttr,
    IntegerType,
    MemRefType,
    UnitAttr,
    i8,
    i32,
)
from xdsl.ir import Attribute, Dialect, Operation, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import EffectInstance, MemoryEffect, MemoryEffectKind, Pure
from xdsl.utils.exceptions import VerifyException

MAX_ROWS = 16
MAX_ROW_BYTES = 64


@irdl_attr_definition
class TileType(ParametrizedAttribute, TypeAttribute):
    """`!amx.tile<RxCxT>`: a tile of R rows of C elements of integer type T."""

    name = "amx.tile"

    shape: ArrayAttr[IntAttr]
    element_type: Attribute

    def __init__(self, rows: int, cols: int, element_type: Attribute):
        super().__init__(ArrayAttr([IntAttr(rows), IntAttr(cols)]), element_type)

    @property
    def rows(self) -> int:
        return self.shape.data[0].data

    @property
    def cols(self) -> int:
        return self.shape.data[1].data

    @property
    def row_bytes(self) -> int:
        assert isinstance(self.element_type, IntegerType)
        return self.cols * self.element_type.width.data // 8

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            dims, element_type = parser.parse_ranked_shape()
        if len(dims) != 2:
            parser.raise_error(f"!amx.tile needs two dimensions, got {len(dims)}")
        return (ArrayAttr([IntAttr(d) for d in dims]), element_type)

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.rows}x{self.cols}x")
        printer.print_attribute(self.element_type)
        printer.print_string(">")

    def verify(self) -> None:
        if not isinstance(self.element_type, IntegerType) or self.element_type not in (i8, i32):
            raise VerifyException(f"!amx.tile: elements must be i8 or i32, got {self.element_type}")
        if not 1 <= self.rows <= MAX_ROWS or not 1 <= self.row_bytes <= MAX_ROW_BYTES:
            raise VerifyException(
                f"!amx.tile: at most {MAX_ROWS} rows of {MAX_ROW_BYTES} bytes, got "
                f"{self.rows} rows of {self.row_bytes} bytes"
            )


class _WritesTile(MemoryEffect):
    """A write effect, as upstream declares it: each op gets a tile register of
    its own (never merged by CSE nor moved across other tile ops)."""

    @classmethod
    def get_effects(cls, op: Operation) -> set[EffectInstance]:
        return {EffectInstance(MemoryEffectKind.WRITE)}


@irdl_op_definition
class TileZeroOp(IRDLOperation):
    """A tile of zeros.

    ```mlir
    %acc = amx.tile_zero : !amx.tile<16x16xi32>
    ```
    """

    name = "amx.tile_zero"
    res = result_def(TileType)
    traits = traits_def(_WritesTile())
    assembly_format = "attr-dict `:` type($res)"

    def __init__(self, tile: TileType):
        super().__init__(result_types=[tile])


def _check_indices(op_name: str, mem: SSAValue, indices: Sequence[SSAValue], stride) -> None:
    t = mem.type
    assert isinstance(t, MemRefType)
    if len(indices) != t.get_num_dims():
        raise VerifyException(
            f"{op_name}: {t} takes {t.get_num_dims()} indices, got {len(indices)}"
        )
    if stride is None and t.get_num_dims() < 2:
        raise VerifyException(f"{op_name}: a 1-D buffer ({t}) needs an explicit stride")


@irdl_op_definition
class TileLoadOp(IRDLOperation):
    """Load a tile: row r from `%base[indices]` plus r strides (in elements).

    Without `%stride`, the stride is the row stride of the buffer's second
    innermost dimension.

    ```mlir
    %a = amx.tile_load %w[%r, %k] : memref<16x4096xi8> into !amx.tile<16x32xi8>
    ```
    """

    name = "amx.tile_load"
    base = operand_def(MemRefType)
    indices = var_operand_def(IndexType)
    stride = opt_operand_def(IndexType)
    res = result_def(TileType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(_WritesTile())
    assembly_format = (
        "$base `[` $indices `]` (`,` $stride^)? attr-dict `:` type($base) `into` type($res)"
    )

    def __init__(
        self,
        base: SSAValue | Operation,
        indices: Sequence[SSAValue | Operation],
        tile: TileType,
        stride: SSAValue | Operation | None = None,
    ):
        super().__init__(
            operands=[base, list(indices), [stride] if stride is not None else []],
            result_types=[tile],
        )

    def verify_(self) -> None:
        _check_indices(self.name, self.base, self.indices, self.stride)


@irdl_op_definition
class TileStoreOp(IRDLOperation):
    """Store a tile: row r to `%base[indices]` plus r strides (in elements).

    ```mlir
    amx.tile_store %out[%c0, %c0], %c : memref<16x16xi32>, !amx.tile<16x16xi32>
    ```
    """

    name = "amx.tile_store"
    base = operand_def(MemRefType)
    indices = var_operand_def(IndexType)
    val = operand_def(TileType)
    stride = opt_operand_def(IndexType)
    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    assembly_format = (
        "$base `[` $indices `]` `,` $val (`,` $stride^)? attr-dict `:` type($base) `,` type($val)"
    )

    def __init__(
        self,
        base: SSAValue | Operation,
        indices: Sequence[SSAValue | Operation],
        val: SSAValue | Operation,
        stride: SSAValue | Operation | None = None,
    ):
        super().__init__(
            operands=[base, list(indices), val, [stride] if stride is not None else []]
        )

    def verify_(self) -> None:
        _check_indices(self.name, self.base, self.indices, self.stride)


@irdl_op_definition
class TileMulIOp(IRDLOperation):
    """Integer tile product: `acc[m, n] + sum_k lhs[m, k] * rhs[k, n]` of bytes,
    rhs in VNNI layout; `zext` marks an unsigned operand (signed otherwise).

    ```mlir
    %c = amx.tile_muli %a zext, %b, %acc
        : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
    ```
    """

    name = "amx.tile_muli"
    lhs = operand_def(TileType)
    rhs = operand_def(TileType)
    acc = operand_def(TileType)
    isZextLhs = opt_prop_def(UnitAttr)  # noqa: N815 (upstream's property names)
    isZextRhs = opt_prop_def(UnitAttr)  # noqa: N815
    res = result_def(TileType)
    traits = traits_def(Pure())

    def __init__(
        self,
        lhs: SSAValue | Operation,
        rhs: SSAValue | Operation,
        acc: SSAValue | Operation,
        zext_lhs: bool,
        zext_rhs: bool,
    ):
        props = {}
        if zext_lhs:
            props["isZextLhs"] = UnitAttr()
        if zext_rhs:
            props["isZextRhs"] = UnitAttr()
        super().__init__(
            operands=[lhs, rhs, acc], result_types=[SSAValue.get(acc).type], properties=props
        )

    @classmethod
    def parse(cls, parser: Parser) -> TileMulIOp:
        lhs = parser.parse_unresolved_operand()
        zl = parser.parse_optional_keyword("zext") is not None
        parser.parse_punctuation(",")
        rhs = parser.parse_unresolved_operand()
        zr = parser.parse_optional_keyword("zext") is not None
        parser.parse_punctuation(",")
        acc = parser.parse_unresolved_operand()
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        types = [parser.parse_type()]
        for _ in range(2):
            parser.parse_punctuation(",")
            types.append(parser.parse_type())
        operands = parser.resolve_operands([lhs, rhs, acc], types, parser.pos)
        op = cls(*operands, zl, zr)
        op.attributes.update(attrs)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_operand(self.lhs)
        if self.isZextLhs is not None:
            printer.print_string(" zext")
        printer.print_string(", ")
        printer.print_operand(self.rhs)
        if self.isZextRhs is not None:
            printer.print_string(" zext")
        printer.print_string(", ")
        printer.print_operand(self.acc)
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_list([self.lhs.type, self.rhs.type, self.acc.type], printer.print_attribute)

    def verify_(self) -> None:
        a, b, c = (v.type for v in (self.lhs, self.rhs, self.acc))
        assert isinstance(a, TileType) and isinstance(b, TileType) and isinstance(c, TileType)
        if a.element_type != i8 or b.element_type != i8 or c.element_type != i32:
            raise VerifyException("amx.tile_muli: byte tiles into an i32 accumulator tile expected")
        if c.rows != a.rows or a.row_bytes != 4 * b.rows or c.cols * 4 != b.row_bytes:
            raise VerifyException(
                f"amx.tile_muli: shapes do not chain: {a} x {b} into {c} (lhs MxK bytes, rhs "
                "K/4 x 4N bytes, acc MxN)"
            )


Amx = Dialect("amx", [TileZeroOp, TileLoadOp, TileStoreOp, TileMulIOp], [TileType])
