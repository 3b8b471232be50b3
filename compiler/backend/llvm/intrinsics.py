"""Ops that become calls to LLVM intrinsics: prefetch, subgroup (warp) reduce, NVVM ids
and barriers. (The upstream form of `qrt.dot_u8i8` is a group of ops: `fusion.py`.)

Also the two helpers every part uses to declare an intrinsic in the module
(once; later calls return the same declaration):

- `declare_intrinsic(ctx, "llvm.nvvm.barrier0", [], ret=None)` for a fixed
  name and signature;
- `overloaded_intrinsic(ctx, "llvm.fma", t, [t, t, t])` for an overloaded
  one, whose name gets the mangled suffix of its result (or of
  `suffix_types`): `llvm.fma.v8f32`.

To translate a new op to an intrinsic, write a handler that declares the
intrinsic and calls it, and add `{OpClass: handler}` to `INTRINSIC_HANDLERS`:

    def _dot_u8s8(op: DotOp, ctx: FunctionContext) -> None:
        acc, a, b = (ctx.get(v) for v in (op.acc, op.lhs, op.rhs))
        fn = declare_intrinsic(
            ctx, "llvm.x86.avx512.vpdpbusd.512", [acc.type, a.type, b.type], ret=acc.type
        )
        ctx.set(op.result, ctx.builder.call(fn, [acc, a, b]))

Handlers that only exist on one target check it first (`require_gpu`).
"""

from __future__ import annotations

import llvmlite.ir as ir
from xdsl.dialects import gpu
from xdsl.dialects.builtin import Float32Type
from xdsl.ir import Operation

from quantir.compiler.backend.llvm.context import FunctionContext, OpHandler, TranslationError
from quantir.compiler.backend.llvm.memref import address
from quantir.compiler.backend.llvm.types import I32, I64, mangle
from quantir.dialects.upstream_ops import MemRefPrefetchOp, SubgroupReduceOp


def declare_intrinsic(
    ctx: FunctionContext, full_name: str, args: list[ir.Type], ret: ir.Type | None = None
) -> ir.Function:
    """The declaration of intrinsic `full_name` (returning void when `ret` is None)."""
    module = ctx.module.ir_module
    existing = module.globals.get(full_name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret or ir.VoidType(), args), full_name)


def overloaded_intrinsic(
    ctx: FunctionContext,
    name: str,
    ret: ir.Type,
    args: list[ir.Type],
    suffix_types: list[ir.Type] | None = None,
) -> ir.Function:
    """An overloaded intrinsic, named after the types in `suffix_types` (default: `ret`)."""
    suffix = suffix_types if suffix_types is not None else [ret]
    full_name = name + "".join("." + mangle(t) for t in suffix)
    return declare_intrinsic(ctx, full_name, args, ret=ret)


def require_gpu(op: Operation, ctx: FunctionContext) -> None:
    if not ctx.target.is_gpu:
        raise TranslationError(f"'{op.name}' needs the NVPTX target")


def _prefetch(op: MemRefPrefetchOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.memref)
    # Not `inbounds`: the address may lie past the buffer's end.
    addr = address(ctx.builder, m, [ctx.get(i) for i in op.indices], inbounds=False)
    ptr_t = ir.PointerType(addrspace=m.addrspace)
    fn = declare_intrinsic(ctx, f"llvm.prefetch.p{m.addrspace}", [ptr_t, I32, I32, I32])
    rw = int(bool(op.is_write.value.data))
    locality = op.locality_hint.value.data
    cache = int(bool(op.is_data_cache.value.data))
    ctx.builder.call(
        fn, [addr, ir.Constant(I32, rw), ir.Constant(I32, locality), ir.Constant(I32, cache)]
    )


def _subgroup_reduce(op: SubgroupReduceOp, ctx: FunctionContext) -> None:
    """An f32 sum over the 32 lanes of a warp: a butterfly of shfl.sync.bfly (full mask)."""
    require_gpu(op, ctx)
    if op.op.data.value != "add" or not isinstance(op.value.type, Float32Type):
        raise TranslationError("gpu.subgroup_reduce: only `add` of f32 is supported")
    b = ctx.builder
    f32 = ir.FloatType()
    shfl = declare_intrinsic(ctx, "llvm.nvvm.shfl.sync.bfly.f32", [I32, f32, I32, I32], ret=f32)
    value = ctx.get(op.value)
    for offset in (16, 8, 4, 2, 1):
        other = b.call(
            shfl, [ir.Constant(I32, -1), value, ir.Constant(I32, offset), ir.Constant(I32, 31)]
        )
        value = b.fadd(value, other)
    ctx.set(op.results[0], value)


_SPECIAL_REGISTERS = {
    gpu.ThreadIdOp: "tid",
    gpu.BlockIdOp: "ctaid",
    gpu.BlockDimOp: "ntid",
    gpu.GridDimOp: "nctaid",
}


def _gpu_id(op: Operation, ctx: FunctionContext) -> None:
    """A thread/block index or size: the PTX special register, widened to index."""
    require_gpu(op, ctx)
    reg = _SPECIAL_REGISTERS[type(op)]
    dim = op.dimension.data
    dim = dim.value if hasattr(dim, "value") else str(dim)
    fn = declare_intrinsic(ctx, f"llvm.nvvm.read.ptx.sreg.{reg}.{dim}", [], ret=I32)
    ctx.set(op.results[0], ctx.builder.zext(ctx.builder.call(fn, []), I64))


def _barrier(op: gpu.BarrierOp, ctx: FunctionContext) -> None:
    ctx.builder.call(declare_intrinsic(ctx, "llvm.nvvm.barrier0", []), [])


INTRINSIC_HANDLERS: dict[type[Operation], OpHandler] = {
    MemRefPrefetchOp: _prefetch,
    SubgroupReduceOp: _subgroup_reduce,
    **{op: _gpu_id for op in _SPECIAL_REGISTERS},
    gpu.BarrierOp: _barrier,
}
