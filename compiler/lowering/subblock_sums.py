"""Sums of x over runs of consecutive columns (a precomputation for qmatmul).

Formats whose values carry an additive term per sub-block (Q4_K's mins, a
GPTQ group's zero point) fold that term out of the inner loop:
`sum_k (s*q_k - o) x_k = s * sum_k q_k x_k - o * sum_k x_k`; the second
factor is computed here once per row of x, for every sub-block.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import memref
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, f32

from quantir.compiler.lowering.emitter import Emitter, Value, vector_of
from quantir.compiler.lowering.loop_roles import role

MAX_VECTOR = 64
"""The longest vector summed at once (longer runs loop over vectors of this size)."""


def lower_subblock_sums(e: Emitter, x: Value, sub_block_size: int, vectorize: bool) -> Value:
    """xsum[m, j] = sum of x[m, j*s : (j+1)*s], in a new [M, K/s] buffer."""
    xt = x.type
    assert isinstance(xt, MemRefType)
    k = xt.get_shape()[1]
    groups = k // sub_block_size
    m = e.dim(x, 0)
    xsum = e.v(memref.AllocOp([m], [], MemRefType(f32, [DYNAMIC_INDEX, groups])))

    def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
        (row,) = ivs

        def group_body(e: Emitter, j: Value, _c) -> None:
            start = e.mul(j, sub_block_size)
            if vectorize and sub_block_size <= MAX_VECTOR:
                total = e.reduce_add(e.vload(x, [row, start], sub_block_size))
            elif vectorize and sub_block_size % MAX_VECTOR == 0:
                # Long runs (a GPTQ group can span all of K): add vectors of
                # MAX_VECTOR lanes, then reduce once.
                vt = vector_of(f32, MAX_VECTOR)

                def chunk(ie: Emitter, c: Value, acc: Sequence[Value]) -> list[Value]:
                    at = ie.add(start, ie.mul(c, MAX_VECTOR))
                    return [ie.addf(acc[0], ie.vload(x, [row, at], MAX_VECTOR), True)]

                (acc,) = e.for_(0, sub_block_size // MAX_VECTOR, 1, chunk, [e.const(0.0, vt)])
                total = e.reduce_add(acc)
            else:
                (total,) = e.for_(
                    0,
                    sub_block_size,
                    1,
                    lambda ie, i, c: [ie.addf(c[0], ie.load(x, [row, ie.add(start, i)]), True)],
                    [e.f32_const(0.0)],
                )
            e.store(total, xsum, [row, j])

        e.for_(0, groups, 1, group_body)

    e.parallel([0], [m], row_body, role("rows"))
    return xsum
