"""Upstream MLIR ops that xDSL 0.75 lacks, with upstream's names, meaning and syntax.

The end of every quantir pipeline is upstream MLIR (docs/pipeline.md); two
of the ops it needs are missing from xDSL's dialects, so they are defined
here and added to xDSL's dialects of the same name (`MemRefWithPrefetch`,
`GPUWithSubgroupReduce`), the way `arith_vector` extends `arith`:

- `memref.prefetch %m[%i, ...], read|write, locality<0..3>, data|instr : memref<...>`
  (upstream `memref.prefetch`; what `qrt.prefetch` becomes);
- `%r = gpu.subgroup_reduce add %v uniform : (f32) -> f32` (upstream
  `gpu.subgroup_reduce`, a warp of 32 lanes on NVIDIA GPUs; what
  `qrt.warp_reduce` becomes).

Both print and parse in upstream's custom syntax, so `mlir-opt` reads what
quantir prints.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import gpu, memref
from xdsl.dialects.builtin import (
    BoolAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    UnitAttr,
    i32,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import EffectInstance, MemoryEffect, MemoryEffectKind, Pure
from xdsl.utils.exceptions import VerifyException

__all__ = ["GPUWithSubgroupReduce", "MemRefPrefetchOp", "MemRefWithPrefetch", "SubgroupReduceOp"]


class _PrefetchEffects(MemoryEffect):
    """A prefetch reads its buffer (so DCE keeps it, as upstream's does)."""

    @classmethod
    def get_effects(cls, op: Operation) -> set[EffectInstance]:
        return {EffectInstance(MemoryEffectKind.READ, op.operands[0])}


@irdl_op_definition
class MemRefPrefetchOp(IRDLOperation):
    """Upstream `memref.prefetch`: a cache hint for `%memref[indices]`; it never faults.

    ```mlir
    memref.prefetch %w[%row, %col], read, locality<3>, data : memref<?x2304xi8>
    ```
    """

    name = "memref.prefetch"

    memref = operand_def(MemRefType)
    indices = var_operand_def(IndexType)
    is_write = prop_def(BoolAttr, prop_name="isWrite")
    locality_hint = prop_def(IntegerAttr[IntegerType], prop_name="localityHint")
    is_data_cache = prop_def(BoolAttr, prop_name="isDataCache")

    traits = traits_def(_PrefetchEffects())

    def __init__(
        self,
        mem: SSAValue | Operation,
        indices: Sequence[SSAValue | Operation],
        is_write: bool = False,
        locality: int = 3,
        is_data_cache: bool = True,
    ):
        super().__init__(
            operands=[mem, list(indices)],
            properties={
                "isWrite": BoolAttr.from_bool(is_write),
                "localityHint": IntegerAttr(locality, i32),
                "isDataCache": BoolAttr.from_bool(is_data_cache),
            },
        )

    def verify_(self) -> None:
        t = self.memref.type
        assert isinstance(t, MemRefType)
        if len(self.indices) != t.get_num_dims():
            raise VerifyException(
                f"memref.prefetch: {t} takes {t.get_num_dims()} indices, got {len(self.indices)}"
            )
        if not 0 <= self.locality_hint.value.data <= 3:
            raise VerifyException("memref.prefetch: locality hint must be in 0..3")

    @classmethod
    def parse(cls, parser: Parser) -> MemRefPrefetchOp:
        mem = parser.parse_unresolved_operand()
        indices = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, parser.parse_unresolved_operand
        )
        parser.parse_punctuation(",")
        write = parser.parse_optional_keyword("write") is not None
        if not write:
            parser.parse_keyword("read")
        parser.parse_punctuation(",")
        parser.parse_keyword("locality")
        parser.parse_punctuation("<")
        locality = parser.parse_integer()
        parser.parse_punctuation(">")
        parser.parse_punctuation(",")
        data = parser.parse_optional_keyword("data") is not None
        if not data:
            parser.parse_keyword("instr")
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        t = parser.parse_type()
        op = cls(
            parser.resolve_operand(mem, t),
            [parser.resolve_operand(i, IndexType()) for i in indices],
            is_write=write,
            locality=locality,
            is_data_cache=data,
        )
        op.attributes.update(attrs)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_operand(self.memref)
        printer.print_string("[")
        printer.print_list(self.indices, printer.print_operand)
        rw = "write" if self.is_write.value.data else "read"
        cache = "data" if self.is_data_cache.value.data else "instr"
        printer.print_string(f"], {rw}, locality<{self.locality_hint.value.data}>, {cache}")
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_attribute(self.memref.type)


_KINDS = ("add", "mul", "and", "or", "xor")
"""The reductions xDSL's `#gpu<all_reduce_op>` and upstream's both spell the same way
(xDSL's `min`/`max` are upstream's `minnumf`/`minsi`/... )."""


@irdl_op_definition
class SubgroupReduceOp(IRDLOperation):
    """Upstream `gpu.subgroup_reduce`: a reduction over the lanes of a subgroup (warp).

    ```mlir
    %total = gpu.subgroup_reduce add %partial uniform : (f32) -> f32
    ```
    """

    name = "gpu.subgroup_reduce"

    value = operand_def(Attribute)
    op = prop_def(gpu.AllReduceOpAttr)
    uniform = opt_prop_def(UnitAttr)
    result = result_def(Attribute)

    traits = traits_def(Pure())

    def __init__(self, value: SSAValue | Operation, kind: str = "add", uniform: bool = True):
        v = SSAValue.get(value)
        super().__init__(
            operands=[v],
            result_types=[v.type],
            properties={
                "op": gpu.AllReduceOpAttr(gpu.AllReduceOpEnum(kind)),
                "uniform": UnitAttr() if uniform else None,
            },
        )

    def verify_(self) -> None:
        if self.op.data.value not in _KINDS:
            raise VerifyException(f"gpu.subgroup_reduce: expected one of {', '.join(_KINDS)}")
        if self.result.type != self.value.type:
            raise VerifyException("gpu.subgroup_reduce: result and operand types differ")

    @classmethod
    def parse(cls, parser: Parser) -> SubgroupReduceOp:
        kind = parser.parse_identifier()
        if kind not in _KINDS:
            parser.raise_error(f"gpu.subgroup_reduce: expected one of {', '.join(_KINDS)}")
        value = parser.parse_unresolved_operand()
        uniform = parser.parse_optional_keyword("uniform") is not None
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        parser.parse_punctuation("(")
        t = parser.parse_type()
        parser.parse_punctuation(")")
        parser.parse_punctuation("->")
        result_t = parser.parse_type()
        if result_t != t:
            parser.raise_error("gpu.subgroup_reduce: result and operand types differ")
        op = cls(parser.resolve_operand(value, t), kind, uniform)
        op.attributes.update(attrs)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(f" {self.op.data.value} ")
        printer.print_operand(self.value)
        if self.uniform is not None:
            printer.print_string(" uniform")
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : (")
        printer.print_attribute(self.value.type)
        printer.print_string(") -> ")
        printer.print_attribute(self.result.type)


MemRefWithPrefetch = Dialect(
    "memref",
    [*memref.MemRef.operations, MemRefPrefetchOp],
    list(memref.MemRef.attributes),
)
"""xDSL's memref dialect with upstream's `memref.prefetch`."""

GPUWithSubgroupReduce = Dialect(
    "gpu",
    [*gpu.GPU.operations, SubgroupReduceOp],
    list(gpu.GPU.attributes),
)
"""xDSL's gpu dialect with upstream's `gpu.subgroup_reduce`."""
