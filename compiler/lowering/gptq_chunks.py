"""The column-chunk skeleton of vectorized GPTQ qmatmul, shared by the float and int8 kernels.

A task owns `chunk` adjacent columns and streams qweight row by row through
them (each qweight row is then read as chunk*4 contiguous bytes, which the
hardware prefetcher follows), keeping per-column sums in two stack buffers:
the current group's raw sums and the running result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from xdsl.dialects import memref
from xdsl.dialects.builtin import f32

from quantir.compiler.lowering.emitter import Emitter, Value, vector_of

if TYPE_CHECKING:
    from quantir.compiler.lowering.gptq_kernels import _Gptq

VECTOR = 16
"""Columns per vector of qweight words."""

GroupBody = Callable[[Emitter, Value, Value, int], None]
"""(emitter, group g, gacc [t, chunk], column vectors) -> adds each column's raw group
sums (sum over the group's k of x * q) into gacc."""


def stream_chunk(
    e: Emitter,
    gp: _Gptq,
    zbuf: Value,
    group_x_sums: Value,
    y: Value,
    c0: Value,
    chunk: int,
    m0: Value,
    t: int,
    accumulate_group: GroupBody,
) -> None:
    """Rows m0..m0+t-1 of y for columns c0..c0+chunk-1, one group at a time.

    The skeleton the float and int8 kernels share: per group, `accumulate_group`
    sums x * q into the per-column buffer gacc; then every column adds
    s_g * (gacc - z_g * group_x_sums[m, g]) to its total, stored at the end.
    """
    v = VECTOR
    vt = vector_of(f32, v)
    subs = chunk // v
    # Per-column sums for this task: the whole result, and the current group's.
    acc = e.v(memref.AllocaOp.get(f32, 64, [t, chunk]))
    gacc = e.v(memref.AllocaOp.get(f32, 64, [t, chunk]))

    def fill_zero(e: Emitter, buf: Value) -> None:
        def body(ie: Emitter, c: Value, _c) -> None:
            for i in range(t):
                ie.vstore(ie.const(0.0, vt), buf, [ie.index(i), ie.mul(c, v)])

        e.for_(0, subs, 1, body)

    fill_zero(e, acc)

    def group_body(e: Emitter, g: Value, _c) -> None:
        fill_zero(e, gacc)
        accumulate_group(e, g, gacc, subs)

        def fold_group(e: Emitter, c: Value, _c) -> None:
            col = e.add(c0, e.mul(c, v))
            s = gp.scales_at(e, g, col, v)
            z = e.vload(zbuf, [g, col], v)
            for i in range(t):
                at = [e.index(i), e.mul(c, v)]
                xs = e.broadcast(e.load(group_x_sums, [e.add(m0, i), g]), vt)
                corrected = e.subf(e.vload(gacc, at, v), e.mulf(z, xs, True), True)
                e.vstore(e.fma(s, corrected, e.vload(acc, at, v)), acc, at)

        e.for_(0, subs, 1, fold_group)

    e.for_(0, gp.groups, 1, group_body)

    def store_body(e: Emitter, c: Value, _c) -> None:
        col = e.add(c0, e.mul(c, v))
        for i in range(t):
            e.vstore(e.vload(acc, [e.index(i), e.mul(c, v)], v), y, [e.add(m0, i), col])

    e.for_(0, subs, 1, store_body)
