"""Translate lowered quantir IR (upstream func, scf, arith, memref, vector, math, gpu) to LLVM IR.

The input is the upstream MLIR the named pipelines end with
(convert-qrt-to-upstream); a module that still holds qrt ops (an
intermediate stage given to `-t llvm`) is converted to that form first, in
place.

xDSL 0.75 has no arith/func/memref/cf-to-llvm conversions, and its llvm
dialect lacks uitofp/fptosi, breaks GEPs in address space 1 and drops calling
conventions. quantir therefore translates its lowered IR straight into
llvmlite's IR builder, the way `mlir-translate` does after the LLVM
conversions, keeping structured control flow until the last step.

This module translates functions; ops are translated by the handlers of
`quantir.compiler.backend.llvm` (one table per group: arith, memref, control
flow, vector, intrinsics), combined in `OP_HANDLERS`. How kernel arguments
become parameters, and the CPU's argv entry point, are the calling
convention's (`quantir.compiler.backend.calling_convention`).
"""

from __future__ import annotations

from collections.abc import Sequence

import llvmlite.ir as ir
from xdsl.dialects import cf, func, memref
from xdsl.dialects.builtin import IndexType, MemRefType, ModuleOp
from xdsl.ir import Operation

from quantir.compiler.backend.calling_convention import (
    KernelSignature,
    LoweredParam,
    define_cpu_entry,
    lowered_params,
)
from quantir.compiler.backend.llvm.amx import AMX_HANDLERS
from quantir.compiler.backend.llvm.arith import ARITH_HANDLERS
from quantir.compiler.backend.llvm.context import (
    FunctionContext,
    ModuleContext,
    OpHandler,
    TargetInfo,
    TranslationError,
)
from quantir.compiler.backend.llvm.control_flow import CONTROL_FLOW_HANDLERS
from quantir.compiler.backend.llvm.fusion import plan_fusions
from quantir.compiler.backend.llvm.intrinsics import INTRINSIC_HANDLERS
from quantir.compiler.backend.llvm.memref import MEMREF_HANDLERS
from quantir.compiler.backend.llvm.types import I64, MemRefValue, llvm_type
from quantir.compiler.backend.llvm.vector import VECTOR_HANDLERS
from quantir.compiler.transforms.convert_qrt_to_upstream import convert_to_upstream
from quantir.dialects.qrt import KERNEL_ATTR

__all__ = [
    "OP_HANDLERS",
    "TargetInfo",
    "TranslationError",
    "translate_kernel",
    "translate_module",
]


def _combine(*tables: dict[type[Operation], OpHandler]) -> dict[type[Operation], OpHandler]:
    combined: dict[type[Operation], OpHandler] = {}
    for table in tables:
        twice = combined.keys() & table.keys()
        assert not twice, f"ops with two LLVM translations: {sorted(t.name for t in twice)}"
        combined.update(table)
    return combined


OP_HANDLERS = _combine(
    CONTROL_FLOW_HANDLERS,
    ARITH_HANDLERS,
    MEMREF_HANDLERS,
    VECTOR_HANDLERS,
    INTRINSIC_HANDLERS,
    AMX_HANDLERS,
)
"""Every op the translation supports, and its handler."""


def translate_op(op: Operation, ctx: FunctionContext) -> None:
    handler = OP_HANDLERS.get(type(op))
    if handler is None:
        raise TranslationError(f"'{op.name}' has no LLVM translation")
    handler(op, ctx)


# Host functions (launches, i.e. calls of kernels, allocations, copies, checks)
# run in the runtime's host plan, not in compiled code.
_HOST_OPS = (func.CallOp, cf.AssertOp, memref.AllocOp, memref.DeallocOp, memref.CopyOp)


class ModuleTranslator:
    """Translates the kernels (or, without kernels, every function) of a module."""

    def __init__(self, target: TargetInfo):
        self.context = ModuleContext(target)
        self.target = target
        self.module = self.context.ir_module
        self.kernels: dict[str, KernelSignature] = {}

    def translate(self, mod: ModuleOp) -> ir.Module:
        funcs = [f for f in mod.ops if isinstance(f, func.FuncOp) and not f.is_declaration]
        kernels = [f for f in funcs if KERNEL_ATTR in f.attributes]
        if kernels:
            for f in kernels:
                self.translate_kernel(f)
        else:
            for f in funcs:
                if not any(isinstance(o, _HOST_OPS) for o in f.walk()):
                    self.translate_plain(f)
        return self.module

    def translate_plain(self, f: func.FuncOp) -> None:
        """A function with memref/scalar arguments and no results (direct ABI)."""
        name = f.sym_name.data
        if f.function_type.outputs.data:
            raise TranslationError(f"@{name}: functions must return nothing")
        params = lowered_params(name, f.function_type.inputs.data, self.target.global_addrspace)
        fn = self._define(name, [p.type for p in params])
        self._translate_body(f, fn, params, skip=0)

    def translate_kernel(self, f: func.FuncOp, name: str | None = None) -> None:
        """Translate kernel `f`, as a function named `name` (default: its own name)."""
        name = name or f.sym_name.data
        inputs = f.function_type.inputs.data
        if len(inputs) < 2 or not all(isinstance(t, IndexType) for t in inputs[:2]):
            raise TranslationError(f"kernel @{name} must start with (lo: index, hi: index)")
        params = lowered_params(name, inputs[2:], self.target.global_addrspace)
        self.kernels[name] = KernelSignature.of(name, inputs[2:])
        types = [I64, I64, *[p.type for p in params]]
        if self.target.is_gpu:
            fn = self._define(name, types)
            fn.calling_convention = "ptx_kernel"
            self._translate_body(f, fn, params, skip=2)
            return
        # CPU: an always-inlined body with noalias parameters behind an entry
        # point with one signature for every kernel.
        body = self._define(f"{name}.body", types)
        body.linkage = "internal"
        body.attributes.add("alwaysinline")
        self._translate_body(f, body, params, skip=2)
        define_cpu_entry(self.module, name, body, params)

    def _define(self, name: str, types: list[ir.Type]) -> ir.Function:
        return ir.Function(self.module, ir.FunctionType(ir.VoidType(), types), name)

    def _translate_body(
        self, f: func.FuncOp, fn: ir.Function, params: Sequence[LoweredParam], skip: int
    ) -> None:
        """Fill `fn` with `f`'s ops; `f`'s first `skip` arguments map one to one."""
        for i, param in enumerate(params):
            if param.kind == "ptr":
                fn.args[skip + i].add_attribute("noalias")
        entry = fn.append_basic_block("entry")
        ctx = FunctionContext(self.context, ir.IRBuilder(entry), entry, translate_op)
        ctx.fused = plan_fusions(f)
        block_args = f.body.block.args
        for arg, value in zip(block_args[:skip], fn.args[:skip]):
            ctx.set(arg, value)
        lowered = iter(fn.args[skip:])
        for arg in block_args[skip:]:
            t = arg.type
            if isinstance(t, MemRefType):
                ptr = next(lowered)
                sizes = [d if d >= 0 else next(lowered) for d in t.get_shape()]
                elem = llvm_type(t.element_type)
                ctx.set(arg, MemRefValue(ptr, elem, sizes, self.target.global_addrspace))
            else:
                ctx.set(arg, next(lowered))
        ctx.translate_ops(f.body.block)


def translate_module(
    mod: ModuleOp, target: TargetInfo
) -> tuple[ir.Module, dict[str, KernelSignature]]:
    """The LLVM module of `mod`'s kernels, and each kernel's signature by name.

    `mod` is converted to upstream MLIR first, in place, if it is not already.
    """
    convert_to_upstream(mod)
    translator = ModuleTranslator(target)
    translator.translate(mod)
    return translator.module, translator.kernels


def translate_kernel(
    kernel: func.FuncOp, target: TargetInfo, name: str
) -> tuple[ir.Module, KernelSignature]:
    """An LLVM module of one kernel, defined as `name`, and its signature: the
    unit of the runtime's per-kernel cache (the IR does not depend on the
    kernel's name in its graph, only on `name`)."""
    translator = ModuleTranslator(target)
    translator.translate_kernel(kernel, name)
    return translator.module, translator.kernels[name]
