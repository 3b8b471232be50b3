"""Quantize rows of x to int8 blocks, once per qmatmul call (the integer-dot path).

Each run of `ACTIVATION_BLOCK` consecutive elements of a row gets one f32
scale `d = max|x| / 127` and codes `q = round_half_even(x * 127 / max|x|)` in
[-127, 127], so that `x ~= d * q` with an error of at most d/2 per element.
An all-zero run gets d = 0 and q = 0. A run holding NaN or an infinity gets
a non-finite d, which carries into every dot product that uses it (the
result is not finite, as with the float path), never a silently wrong
finite value.

With `sum_run`, it also emits the sums of the quantized values d * q over
runs of `sum_run` elements (16 or 32): what the integer-dot path subtracts
to undo the bias of unsigned weight codes, which must cancel exactly
against the same quantized x it was added with.

Rounding uses the float trick `(v + 1.5 * 2^23) - bits(1.5 * 2^23)`: for
|v| <= 2^22 the addition rounds v to an integer half-to-even (the current
rounding mode), and the low mantissa bits are that integer.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import memref
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, VectorType, f32, i8, i32

from quantir.compiler.lowering.emitter import Emitter, Value
from quantir.compiler.lowering.loop_roles import role

ACTIVATION_BLOCK = 32
"""Elements of x that share one int8 scale."""

TASK_ELEMENTS = 2048
"""Elements of a row one task of the quantizing kernel takes (whole spans)."""

_ROUNDING_MAGIC = 12582912.0  # 1.5 * 2^23
_ROUNDING_MAGIC_BITS = 0x4B400000


def lower_quantize_rows(
    e: Emitter,
    x: Value,
    sum_run: int | None = None,
    permutation: Sequence[int] | None = None,
    shared_scale: tuple[int, int | None] | None = None,
    run_order: Sequence[int] | None = None,
) -> tuple[Value, Value, Value | None]:
    """Emit xq[m, k] (i8 codes), xd[m, k / 32] (f32 scales) for x [M, K], K % 32 == 0,
    and with `sum_run` qsum[m, k / sum_run], the sums of xd * xq over each run.

    With `permutation` (of range(32)), the codes of each block of 32 are stored
    permuted: xq[m, 32 b + p] is the code of x[m, 32 b + permutation[p]] (the
    order a weight layout's dot products consume them in). Scales and sums do
    not depend on the order.

    With `shared_scale = (span, below)`, the blocks of each run of `span`
    elements (a multiple of 32 dividing K) share one scale, max|x| / 127 over
    the span, when x has fewer than `below` rows (always for None; a kernel
    whose tile path takes the larger calls keeps its scales per 32 for those):
    xd keeps one entry per
    block of 32 (equal within a span), so every reader of xd is unchanged,
    and a weight format whose integer sub-block scales span the run can sum a
    whole weight block in integers. The error bound per element becomes half
    the span's scale (ggml's Q8_K, 256 elements, does the same).

    With `run_order` as well (a permutation of the span's runs of 32), the
    codes of run `run_order[p]` of each span are stored at run position p
    (under the same condition): the order a format's dots read them in.
    Scales and sums stay at their runs' own positions."""
    xt = x.type
    assert isinstance(xt, MemRefType)
    k = xt.get_shape()[1]
    assert k % ACTIVATION_BLOCK == 0, k
    blocks = k // ACTIVATION_BLOCK
    span = ACTIVATION_BLOCK if shared_scale is None else shared_scale[0]
    assert span % ACTIVATION_BLOCK == 0 and k % span == 0, (span, k)
    per_span = span // ACTIVATION_BLOCK
    order = None  # order[i]: the stored position of run i of a span
    if run_order is not None:
        assert shared_scale is not None and sorted(run_order) == list(range(per_span)), run_order
        order = [list(run_order).index(i) for i in range(per_span)]
    m = e.dim(x, 0)
    xq = e.v(memref.AllocOp([m], [], MemRefType(i8, [DYNAMIC_INDEX, k])))
    xd = e.v(memref.AllocOp([m], [], MemRefType(f32, [DYNAMIC_INDEX, blocks])))
    qsum = None
    if sum_run is not None:
        assert ACTIVATION_BLOCK % sum_run == 0, sum_run
        qsum_t = MemRefType(f32, [DYNAMIC_INDEX, k // sum_run])
        qsum = e.v(memref.AllocOp([m], [], qsum_t))
    vf = VectorType(f32, [ACTIVATION_BLOCK])
    if permutation is not None:
        permutation = list(permutation)
        assert sorted(permutation) == list(range(ACTIVATION_BLOCK)), permutation
        if permutation == sorted(permutation):
            permutation = None

    # A row is cut into parts of about TASK_ELEMENTS: the launch range is
    # rows x parts, so at M = 1 (decode) every thread quantizes a share of x
    # instead of one thread all of it while the others wait.
    spans = k // span
    per_part = max(1, TASK_ELEMENTS // span)
    parts = -(-spans // per_part)

    def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
        (item,) = ivs
        if parts == 1:
            row, first_span, end_span = item, e.index(0), e.index(spans)
        else:
            row = e.divui(item, parts)
            first_span = e.mul(e.remui(item, parts), per_part)
            end_span = e.minui(e.add(first_span, per_part), spans)
        below = shared_scale[1] if shared_scale is not None else None
        when = e.cmpi("ult", e.dim(x, 0), below) if below is not None else None

        def block(e: Emitter, b: Value, v: Value, amax: Value, at: Value | None = None) -> None:
            col = e.mul(b, ACTIVATION_BLOCK)
            d = e.divf(amax, 127.0)
            inv = e.select(e.cmpf("ogt", amax, 0.0), e.divf(127.0, amax), e.f32_const(0.0))
            scaled = e.mulf(v, e.broadcast(inv, vf))
            shifted = e.addf(scaled, _ROUNDING_MAGIC)
            bits = e.bitcast(shifted, VectorType(i32, [ACTIVATION_BLOCK]))
            wide = e.sub(bits, _ROUNDING_MAGIC_BITS)
            codes = e.trunci(wide, i8)
            if permutation is not None:
                codes = e.shuffle(codes, codes, permutation)
            e.vstore(codes, xq, [row, col if at is None else at])
            e.store(d, xd, [row, b])
            if qsum is not None:
                runs = ACTIVATION_BLOCK // sum_run
                for r in range(runs):
                    part = wide
                    if runs > 1:
                        part = e.shuffle(wide, wide, [r * sum_run + i for i in range(sum_run)])
                    total = e.mulf(e.sitofp(e.reduce_add(part)), d)
                    e.store(total, qsum, [row, e.add(e.mul(b, runs), r)])

        def span_body(e: Emitter, s: Value, _c) -> None:
            first = e.mul(s, per_span)
            if per_span == 1:
                v = e.vload(x, [row, e.mul(s, span)], ACTIVATION_BLOCK)
                block(e, first, v, e.reduce_max(e.absf(v)))
                return
            shared = e.reduce_max(e.absf(e.vload(x, [row, e.mul(s, span)], span)))
            for i in range(per_span):
                b = e.add(first, i)
                v = e.vload(x, [row, e.mul(b, ACTIVATION_BLOCK)], ACTIVATION_BLOCK)
                amax = shared
                if when is not None:
                    amax = e.select(when, shared, e.reduce_max(e.absf(v)))
                at = None
                if order is not None and order[i] != i:
                    moved = e.mul(e.add(first, order[i]), ACTIVATION_BLOCK)
                    natural = e.mul(b, ACTIVATION_BLOCK)
                    at = moved if when is None else e.select(when, moved, natural)
                block(e, b, v, amax, at)

        e.for_(first_span, end_span, 1, span_body)

    e.parallel([0], [m if parts == 1 else e.mul(m, parts)], row_body, role("rows"))
    return xq, xd, qsum
