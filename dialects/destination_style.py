"""What quant and qnn compute ops share: a value form on tensors and a
destination-passing form on memrefs.

```mlir
%y = qnn.add %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
qnn.add %a, %b outs(%y) : (memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
```

An op has either a tensor result (every operand a tensor) or an `outs(%buffer)`
memref operand and no result (every operand a memref); bufferization turns the
first form into the second. `DestinationStyleOp` parses, prints and verifies
that choice once, and declares the result-shape inference each op provides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol, TypeVar

from xdsl.dialects.builtin import MemRefType, TensorType
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import IRDLOperation
from xdsl.parser import Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.traits import EffectInstance, MemoryEffect, MemoryEffectKind
from xdsl.utils.exceptions import VerifyException

__all__ = ["DestinationStyleOp", "DimSolver", "ParsedDestinationOp", "WritesOutBuffer"]

D = TypeVar("D")


class DimSolver(Protocol[D]):
    """How result-shape inference makes dimensions agree.

    Dimensions are whatever the caller tracks (bufferization: static sizes or
    the argument dimension they equal). `unify` returns the common value of
    `dims`; `check` requires `a * fa == b * fb`. Either may defer the check to
    run time.
    """

    def unify(self, dims: list[D], what: str) -> D: ...

    def check(self, a: D, b: D, what: str, fa: int = 1, fb: int = 1) -> None: ...


class WritesOutBuffer(MemoryEffect):
    """Reads its operands; writes its outs() buffer when it has one."""

    @classmethod
    def get_effects(cls, op: Operation) -> set[EffectInstance]:
        effects = {EffectInstance(MemoryEffectKind.READ, o) for o in op.operands}
        out = getattr(op, "out", None)
        if out is not None:
            effects.add(EffectInstance(MemoryEffectKind.WRITE, out))
        return effects


class ParsedDestinationOp:
    """The part of `OP ... %a, %b [outs(%o)] [attrs] : (types) -> types` after the
    op's own attributes, resolved."""

    def __init__(
        self,
        inputs: list[SSAValue],
        out: SSAValue | None,
        result_type: Attribute | None,
        attributes: dict[str, Attribute],
    ):
        self.inputs = inputs
        self.out = out
        self.result_type = result_type
        self.attributes = attributes


class DestinationStyleOp(IRDLOperation):
    """Base of the ops with a value form and an `outs()` form (see the module docs).

    Subclasses define `out` (an optional memref operand) and `result` (an
    optional tensor result).
    """

    VALUE_FORM_RULE: ClassVar[str] = "every operand must be a tensor"
    """What the value-form diagnostic says the operands must be."""

    @property
    def inputs(self) -> list[SSAValue]:
        """The operands that are read: every operand but the outs() buffer, which
        comes last (it may also be read in place, e.g. `qnn.add %y, %b outs(%y)`)."""
        operands = list(self.operands)
        return operands[:-1] if self.out is not None else operands  # type: ignore[attr-defined]

    @property
    def diagnostic_name(self) -> str:
        """How diagnostics name the op."""
        return self.name

    # -- syntax ---------------------------------------------------------------

    @staticmethod
    def parse_destination(
        parser: Parser, parse_inputs: Callable[[], list[UnresolvedOperand]]
    ) -> ParsedDestinationOp:
        """Parse the inputs (with `parse_inputs`), `outs(...)`, attributes and types."""
        inputs = parse_inputs()
        out = None
        if parser.parse_optional_keyword("outs") is not None:
            parser.parse_punctuation("(")
            out = parser.parse_unresolved_operand()
            parser.parse_punctuation(")")
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        pos = parser.pos
        ftype = parser.parse_function_type()
        unresolved = inputs + ([out] if out is not None else [])
        if len(ftype.inputs.data) != len(unresolved):
            parser.raise_error(
                f"{len(unresolved)} operands but {len(ftype.inputs.data)} operand types", pos
            )
        values = parser.resolve_operands(unresolved, ftype.inputs.data, pos)
        out_value = values.pop() if out is not None else None
        results = list(ftype.outputs.data)
        if len(results) > 1:
            parser.raise_error("expected at most one result type", pos)
        return ParsedDestinationOp(values, out_value, results[0] if results else None, attrs)

    def print_destination(self, printer: Printer) -> None:
        """Print the inputs, `outs(...)`, attributes and types."""
        printer.print_list(self.inputs, printer.print_operand)
        out: SSAValue | None = self.out  # type: ignore[attr-defined]
        if out is not None:
            printer.print_string(" outs(")
            printer.print_operand(out)
            printer.print_string(")")
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_function_type([o.type for o in self.operands], [r.type for r in self.results])

    # -- checks ---------------------------------------------------------------

    def destination_type(self) -> Attribute:
        """The type the op produces (its result's or its outs() buffer's), once the
        two forms are checked."""
        what = self.diagnostic_name
        out: SSAValue | None = self.out  # type: ignore[attr-defined]
        res: SSAValue | None = self.result  # type: ignore[attr-defined]
        if out is not None:
            if res is not None:
                raise VerifyException(f"{what}: has both a result and an outs() buffer")
            if not all(isinstance(v.type, MemRefType) for v in self.inputs) or not isinstance(
                out.type, MemRefType
            ):
                raise VerifyException(
                    f"{what}: the outs() form works on memrefs: every operand must be a memref"
                )
            return out.type
        if res is None:
            raise VerifyException(f"{what}: needs a tensor result or an outs() memref")
        if not all(isinstance(v.type, TensorType) for v in self.inputs) or not isinstance(
            res.type, TensorType
        ):
            raise VerifyException(
                f"{what}: the value form works on tensors: {self.VALUE_FORM_RULE}"
            )
        return res.type

    # -- what bufferization needs -------------------------------------------------

    def infer_result_dims(self, operand_dims: Sequence[list[D]], solver: DimSolver[D]) -> list[D]:
        """The result's dimensions from the inputs' (`operand_dims`, in operand order),
        asking `solver` to make the dimensions the op needs equal agree."""
        raise NotImplementedError(f"{self.name} does not infer its result shape")

    def on_buffers(self, inputs: Sequence[SSAValue], out: SSAValue) -> DestinationStyleOp:
        """This op in its outs() form, reading `inputs` and writing `out`."""
        raise NotImplementedError(f"{self.name} has no outs() form")
