"""What an op handler works with: the module being built and one function's state.

A handler is `handler(op, ctx)`: it reads its operands' LLVM values with
`ctx.get`, emits instructions through `ctx.builder` and records its results
with `ctx.set`. Ops with regions translate their nested ops through
`ctx.translate`, which goes back through the translator's combined table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import llvmlite.ir as ir
from xdsl.ir import Block, Operation, SSAValue

from quantir.dialects.errors import QuantirError


class TranslationError(QuantirError):
    """The module holds something the LLVM translation does not support."""


@dataclass(frozen=True)
class TargetInfo:
    """What differs between the CPU and the NVPTX translation."""

    name: str  # "cpu" | "nvptx"
    triple: str
    data_layout: str = ""
    features: frozenset[str] = frozenset()
    """CPU features the code may use (LLVM names: "avx2", "avx512vnni", ...): they pick
    instructions (e.g. for qrt.dot_u8i8) and are part of the kernel cache key."""

    @property
    def is_gpu(self) -> bool:
        return self.name == "nvptx"

    @property
    def global_addrspace(self) -> int:
        return 1 if self.is_gpu else 0


class ModuleContext:
    """The LLVM module under construction and what every function in it shares."""

    def __init__(self, target: TargetInfo):
        self.target = target
        self.ir_module = ir.Module(name="quantir")
        self.ir_module.triple = target.triple
        if target.data_layout:
            self.ir_module.data_layout = target.data_layout
        # Created first, so it prints as !0 whether or not a function uses it.
        self.nontemporal = self.ir_module.add_metadata([ir.Constant(ir.IntType(32), 1)])


OpHandler = Callable[[Operation, "FunctionContext"], None]
"""Translates one op (of the class it is registered for) at the builder's position."""


@dataclass
class FunctionContext:
    """The state of one LLVM function being filled with translated ops."""

    module: ModuleContext
    builder: ir.IRBuilder
    entry: ir.Block
    dispatch: Callable[[Operation, FunctionContext], None]
    values: dict[SSAValue, object] = field(default_factory=dict)
    fused: dict[Operation, object] = field(default_factory=dict)
    """Ops translated as part of a group (`fusion.plan_fusions`): the group's root maps
    to its handler, its other ops to None (they emit nothing)."""

    @property
    def target(self) -> TargetInfo:
        return self.module.target

    def get(self, value: SSAValue):
        """The LLVM value (or `MemRefValue`) an SSA value was translated to."""
        try:
            return self.values[value]
        except KeyError:
            name = value.name_hint or value
            raise TranslationError(f"value {name} used before its definition") from None

    def set(self, value: SSAValue, translated: object) -> None:
        self.values[value] = translated

    def translate(self, op: Operation) -> None:
        if op in self.fused:
            handler = self.fused[op]
            if handler is not None:
                handler(op, self)
            return
        self.dispatch(op, self)

    def translate_ops(self, block: Block) -> None:
        for op in block.ops:
            self.translate(op)
