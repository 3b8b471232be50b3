"""Memory: memref loads, stores, views and stack buffers, and vector loads and stores.

A memref is a `MemRefValue` (base pointer plus sizes): an access computes
the row-major linear index and one GEP from the base; `collapse_shape` and
`expand_shape` only recompute sizes. Accesses use the element's natural
alignment, vectors included (buffers need not be vector-aligned).
"""

from __future__ import annotations

from collections.abc import Sequence

import llvmlite.ir as ir
from xdsl.dialects import arith, memref, vector
from xdsl.dialects.builtin import IntegerAttr, MemRefType
from xdsl.ir import Operation

from quantir.compiler.backend.llvm.context import FunctionContext, OpHandler, TranslationError
from quantir.compiler.backend.llvm.types import I64, MemRefValue, llvm_type, natural_alignment
from quantir.dialects.qrt import ALIGN_ATTR


def address(
    b: ir.IRBuilder, m: MemRefValue, indices: Sequence[ir.Value], inbounds: bool = True
) -> ir.Value:
    """The address of element `indices` of `m`."""
    if len(indices) != len(m.sizes):
        raise TranslationError("memref access with the wrong number of indices")
    linear: ir.Value | None = None
    for idx, size in zip(indices, m.sizes):
        if linear is None:
            linear = idx
        else:
            size_v = ir.Constant(I64, size) if isinstance(size, int) else size
            linear = b.add(b.mul(linear, size_v), idx)
    if linear is None:
        linear = ir.Constant(I64, 0)
    return b.gep(m.ptr, [linear], inbounds=inbounds, source_etype=m.elem)


def _element_address(ctx: FunctionContext, m: MemRefValue, indices) -> ir.Value:
    return address(ctx.builder, m, [ctx.get(i) for i in indices])


def _load(op: memref.LoadOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.memref)
    addr = _element_address(ctx, m, op.indices)
    ctx.set(op.res, ctx.builder.load(addr, typ=m.elem, align=natural_alignment(m.elem)))


def _store(op: memref.StoreOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.memref)
    value = ctx.get(op.value)
    addr = _element_address(ctx, m, op.indices)
    ctx.builder.store(value, addr, align=natural_alignment(m.elem))


def _vector_alignment(op: Operation, ctx: FunctionContext, m: MemRefValue) -> int:
    """Element alignment, or on the GPU the wider one the lowering guarantees (`qrt.align`)."""
    align = natural_alignment(m.elem)
    hint = op.attributes.get(ALIGN_ATTR)
    if ctx.target.is_gpu and isinstance(hint, IntegerAttr):
        align = max(align, hint.value.data)
    return align


def _vector_load(op: vector.LoadOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.base)
    t = llvm_type(op.result.type)
    addr = _element_address(ctx, m, op.indices)
    ctx.set(op.result, ctx.builder.load(addr, typ=t, align=_vector_alignment(op, ctx, m)))


def _vector_store(op: vector.StoreOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.base)
    addr = _element_address(ctx, m, op.indices)
    value = ctx.get(op.vector)
    nt = op.nontemporal
    if nt is not None and nt.value.data and not ctx.target.is_gpu:
        store_nontemporal(ctx, value, addr, natural_alignment(m.elem))
    else:
        ctx.builder.store(value, addr, align=_vector_alignment(op, ctx, m))


def store_nontemporal(ctx: FunctionContext, value: ir.Value, addr: ir.Value, elem_align: int):
    """A streaming store: whole-vector where the address allows it.

    x86 streaming stores of whole vectors need the vector's alignment
    (capped at 64 bytes). Buffers quantir allocates are 64-byte aligned,
    so that branch is the one normally taken; for other buffers (numpy's
    are 16-byte aligned) the store stays non-temporal at element
    alignment, which LLVM splits into 8-byte MOVNTI stores: still no
    read-for-ownership of the destination, unlike a plain store.
    """
    b = ctx.builder
    nontemporal = ctx.module.nontemporal
    t = value.type
    if isinstance(t, ir.VectorType):
        size = t.count * natural_alignment(t.element)
    else:
        size = natural_alignment(t)
    align = min(64, size)
    if align & (align - 1) or align <= elem_align:
        st = b.store(value, addr, align=elem_align)
        st.set_metadata("nontemporal", nontemporal)
        return
    misaligned = b.and_(b.ptrtoint(addr, I64), ir.Constant(I64, align - 1))
    is_aligned = b.icmp_unsigned("==", misaligned, ir.Constant(I64, 0))
    with b.if_else(is_aligned, likely=True) as (then, otherwise):
        with then:
            st = b.store(value, addr, align=align)
            st.set_metadata("nontemporal", nontemporal)
        with otherwise:
            st = b.store(value, addr, align=elem_align)
            st.set_metadata("nontemporal", nontemporal)


def _dim(op: memref.DimOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.source)
    idx_op = op.index.owner
    if not isinstance(idx_op, arith.ConstantOp):
        raise TranslationError("memref.dim needs a constant dimension")
    size = m.sizes[idx_op.value.value.data]
    ctx.set(op.result, ir.Constant(I64, size) if isinstance(size, int) else size)


def _mul_size(b: ir.IRBuilder, a: int | ir.Value, c: int | ir.Value) -> int | ir.Value:
    if isinstance(a, int) and isinstance(c, int):
        return a * c
    av = ir.Constant(I64, a) if isinstance(a, int) else a
    cv = ir.Constant(I64, c) if isinstance(c, int) else c
    return b.mul(av, cv)


def _collapse_shape(op: memref.CollapseShapeOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.src)
    sizes: list[int | ir.Value] = []
    for group in op.reassociation.data:
        total: int | ir.Value = 1
        for i in (a.value.data for a in group.data):
            total = _mul_size(ctx.builder, total, m.sizes[i])
        sizes.append(total)
    ctx.set(op.result, MemRefValue(m.ptr, m.elem, sizes, m.addrspace))


def _expand_shape(op: memref.ExpandShapeOp, ctx: FunctionContext) -> None:
    m = ctx.get(op.src)
    dyn = iter(ctx.get(v) for v in op.output_shape)
    sizes = [d if d >= 0 else next(dyn) for d in op.static_output_shape.get_values()]
    ctx.set(op.result, MemRefValue(m.ptr, m.elem, sizes, m.addrspace))


def _alloca(op: memref.AllocaOp, ctx: FunctionContext) -> None:
    t = op.memref.type
    assert isinstance(t, MemRefType)
    if any(d < 0 for d in t.get_shape()):
        raise TranslationError("memref.alloca needs static sizes")
    count = 1
    for d in t.get_shape():
        count *= d
    elem = llvm_type(t.element_type)
    b = ctx.builder
    # Allocas go in the entry block so loops do not grow the stack.
    with b.goto_entry_block():
        b.position_at_start(ctx.entry)
        slot = b.alloca(ir.ArrayType(elem, count))
        slot.align = 64
        # llvmlite types allocas as typed pointers, whose loads and stores it
        # checks against the pointee; LLVM 22 pointers are opaque, so give
        # this one the opaque type of every other buffer pointer (the printed
        # IR is the same).
        slot.type = ir.PointerType()
    ctx.set(op.memref, MemRefValue(slot, elem, list(t.get_shape())))


MEMREF_HANDLERS: dict[type[Operation], OpHandler] = {
    memref.LoadOp: _load,
    memref.StoreOp: _store,
    vector.LoadOp: _vector_load,
    vector.StoreOp: _vector_store,
    memref.DimOp: _dim,
    memref.CollapseShapeOp: _collapse_shape,
    memref.ExpandShapeOp: _expand_shape,
    memref.AllocaOp: _alloca,
}
