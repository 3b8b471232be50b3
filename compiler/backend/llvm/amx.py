"""AMX tile ops (`amx.tile_*`) as LLVM's shape-carrying AMX intrinsics.

Tiles become values of LLVM's `x86_amx` type, made and consumed by the
`.internal` intrinsics, which carry each tile's rows and row bytes as i16
operands. LLVM then assigns tile registers and writes each function's tile
configuration itself (`ldtilecfg` in the prologue, `tilerelease` before
returning), so the IR never names a register or a configuration. Strides
are in bytes at this level (the ops' strides count elements).
"""

from __future__ import annotations

import llvmlite.ir as ir
from xdsl.dialects.builtin import MemRefType

from quantir.compiler.backend.llvm.context import FunctionContext, OpHandler, TranslationError
from quantir.compiler.backend.llvm.intrinsics import declare_intrinsic
from quantir.compiler.backend.llvm.memref import address
from quantir.compiler.backend.llvm.types import I64, MemRefValue
from quantir.dialects.amx import TileLoadOp, TileMulIOp, TileStoreOp, TileType, TileZeroOp

I16 = ir.IntType(16)


class X86AmxType(ir.Type):
    """LLVM's opaque tile type (llvmlite has no class for it)."""

    def _to_string(self) -> str:
        return "x86_amx"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X86AmxType)

    def __hash__(self) -> int:
        return hash("x86_amx")


AMX = X86AmxType()


def _require_amx(op, ctx: FunctionContext) -> None:
    if ctx.target.is_gpu or not {"amx-tile", "amx-int8"} <= ctx.target.features:
        raise TranslationError(f"'{op.name}' needs a CPU target with AMX-TILE and AMX-INT8")


def _shape(t: TileType) -> list[ir.Constant]:
    return [ir.Constant(I16, t.rows), ir.Constant(I16, t.row_bytes)]


def _stride_bytes(ctx: FunctionContext, op, m: MemRefValue) -> ir.Value:
    """The byte distance between tile rows: the explicit stride, or the buffer's row stride."""
    t = op.base.type
    assert isinstance(t, MemRefType)
    width = t.element_type.bitwidth // 8
    if op.stride is not None:
        return ctx.builder.mul(ctx.get(op.stride), ir.Constant(I64, width))
    inner = m.sizes[-1]
    if isinstance(inner, int):
        return ir.Constant(I64, inner * width)
    return ctx.builder.mul(inner, ir.Constant(I64, width))


def _tile_zero(op: TileZeroOp, ctx: FunctionContext) -> None:
    _require_amx(op, ctx)
    fn = declare_intrinsic(ctx, "llvm.x86.tilezero.internal", [I16, I16], ret=AMX)
    ctx.set(op.res, ctx.builder.call(fn, _shape(op.res.type)))


def _tile_load(op: TileLoadOp, ctx: FunctionContext) -> None:
    _require_amx(op, ctx)
    m = ctx.get(op.base)
    addr = address(ctx.builder, m, [ctx.get(i) for i in op.indices], inbounds=False)
    fn = declare_intrinsic(
        ctx, "llvm.x86.tileloadd64.internal", [I16, I16, ir.PointerType(), I64], ret=AMX
    )
    stride = _stride_bytes(ctx, op, m)
    ctx.set(op.res, ctx.builder.call(fn, [*_shape(op.res.type), addr, stride]))


def _tile_store(op: TileStoreOp, ctx: FunctionContext) -> None:
    _require_amx(op, ctx)
    m = ctx.get(op.base)
    addr = address(ctx.builder, m, [ctx.get(i) for i in op.indices], inbounds=False)
    fn = declare_intrinsic(
        ctx, "llvm.x86.tilestored64.internal", [I16, I16, ir.PointerType(), I64, AMX]
    )
    stride = _stride_bytes(ctx, op, m)
    ctx.builder.call(fn, [*_shape(op.val.type), addr, stride, ctx.get(op.val)])


_MULI = {
    (True, False): "tdpbusd",
    (False, True): "tdpbsud",
    (True, True): "tdpbuud",
    (False, False): "tdpbssd",
}


def _tile_muli(op: TileMulIOp, ctx: FunctionContext) -> None:
    _require_amx(op, ctx)
    a, c = op.lhs.type, op.acc.type
    name = _MULI[(op.isZextLhs is not None, op.isZextRhs is not None)]
    fn = declare_intrinsic(
        ctx, f"llvm.x86.{name}.internal", [I16, I16, I16, AMX, AMX, AMX], ret=AMX
    )
    # (M rows, N bytes of an accumulator row, K bytes of a left-hand row)
    dims = [ir.Constant(I16, v) for v in (c.rows, c.row_bytes, a.row_bytes)]
    ctx.set(op.res, ctx.builder.call(fn, [*dims, *(ctx.get(v) for v in (op.acc, op.lhs, op.rhs))]))


AMX_HANDLERS: dict[type, OpHandler] = {
    TileZeroOp: _tile_zero,
    TileLoadOp: _tile_load,
    TileStoreOp: _tile_store,
    TileMulIOp: _tile_muli,
}
