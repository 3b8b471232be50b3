"""Structured control flow (scf.for, scf.parallel, scf.if) and func.return.

quantir keeps loops structured until this step: each loop becomes a header
block with one phi per induction variable and carried value, a body and an
exit; `scf.parallel` becomes one such loop per dimension (the parallelism
was already taken by the kernel's [lo, hi) slice or GPU threads). Loops
step with `nsw` adds and signed `<` compares.
"""

from __future__ import annotations

import llvmlite.ir as ir
from xdsl.dialects import func, scf
from xdsl.ir import Block, Operation

from quantir.compiler.backend.llvm.context import FunctionContext, OpHandler, TranslationError
from quantir.compiler.backend.llvm.types import I64, llvm_type


def _return(op: func.ReturnOp, ctx: FunctionContext) -> None:
    if op.operands:
        raise TranslationError("functions must return nothing")
    ctx.builder.ret_void()


def _translate_region_body(block: Block, ctx: FunctionContext, terminator: type) -> list:
    """Translate `block`'s ops; return the LLVM values its terminator yields."""
    out: list = []
    for inner in block.ops:
        if isinstance(inner, terminator):
            out = [ctx.get(v) for v in inner.operands]
        else:
            ctx.translate(inner)
    return out


def _for(op: scf.ForOp, ctx: FunctionContext) -> None:
    b = ctx.builder
    lb, ub, step = (ctx.get(v) for v in (op.lb, op.ub, op.step))
    inits = [ctx.get(v) for v in op.iter_args]
    pre = b.block
    fn = pre.function
    header = fn.append_basic_block("for.header")
    body = fn.append_basic_block("for.body")
    exit_ = fn.append_basic_block("for.exit")
    b.branch(header)
    b.position_at_end(header)
    iv = b.phi(lb.type, name="iv")
    iv.add_incoming(lb, pre)
    carried = []
    for v in inits:
        p = b.phi(v.type)
        p.add_incoming(v, pre)
        carried.append(p)
    cond = b.icmp_signed("<", iv, ub)
    b.cbranch(cond, body, exit_)
    b.position_at_end(body)
    block = op.body.block
    ctx.set(block.args[0], iv)
    for arg, p in zip(block.args[1:], carried):
        ctx.set(arg, p)
    yielded = _translate_region_body(block, ctx, scf.YieldOp)
    latch = b.block
    nxt = b.add(iv, step, flags=("nsw",))
    iv.add_incoming(nxt, latch)
    for p, y in zip(carried, yielded):
        p.add_incoming(y, latch)
    b.branch(header)
    b.position_at_end(exit_)
    for r, p in zip(op.results, carried):
        ctx.set(r, p)


def _parallel(op: scf.ParallelOp, ctx: FunctionContext) -> None:
    """One nested loop per dimension, outermost first; no reductions."""
    if op.initVals:
        raise TranslationError("scf.parallel with reductions has no LLVM translation")
    b = ctx.builder
    block = op.body.block
    dims = list(zip(op.lowerBound, op.upperBound, op.step, block.args))

    def emit(level: int) -> None:
        if level == len(dims):
            for inner in block.ops:
                if isinstance(inner, scf.ReduceOp):
                    if inner.operands:
                        raise TranslationError("scf.reduce with operands is unsupported")
                    continue
                ctx.translate(inner)
            return
        lb_v, ub_v, step_v, arg = dims[level]
        lb, ub, step = (ctx.get(v) for v in (lb_v, ub_v, step_v))
        pre = b.block
        fn = pre.function
        header = fn.append_basic_block("par.header")
        body = fn.append_basic_block("par.body")
        exit_ = fn.append_basic_block("par.exit")
        b.branch(header)
        b.position_at_end(header)
        iv = b.phi(I64, name="piv")
        iv.add_incoming(lb, pre)
        b.cbranch(b.icmp_signed("<", iv, ub), body, exit_)
        b.position_at_end(body)
        ctx.set(arg, iv)
        emit(level + 1)
        latch = b.block
        iv.add_incoming(b.add(iv, step, flags=("nsw",)), latch)
        b.branch(header)
        b.position_at_end(exit_)

    emit(0)


def _if(op: scf.IfOp, ctx: FunctionContext) -> None:
    b = ctx.builder
    fn = b.block.function
    then_bb = fn.append_basic_block("if.then")
    else_bb = fn.append_basic_block("if.else")
    merge = fn.append_basic_block("if.end")
    b.cbranch(ctx.get(op.cond), then_bb, else_bb)
    incoming: list[tuple[list, ir.Block]] = []
    for region, bb in ((op.true_region, then_bb), (op.false_region, else_bb)):
        b.position_at_end(bb)
        vals: list = []
        if region.blocks:
            vals = _translate_region_body(region.block, ctx, scf.YieldOp)
        incoming.append((vals, b.block))
        b.branch(merge)
    b.position_at_end(merge)
    for i, r in enumerate(op.results):
        p = b.phi(llvm_type(r.type))
        for vals, bb in incoming:
            p.add_incoming(vals[i], bb)
        ctx.set(r, p)


CONTROL_FLOW_HANDLERS: dict[type[Operation], OpHandler] = {
    func.ReturnOp: _return,
    scf.ForOp: _for,
    scf.ParallelOp: _parallel,
    scf.IfOp: _if,
}
