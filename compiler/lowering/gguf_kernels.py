"""Loop nests for dequantize, gather and qmatmul over GGUF block formats.

Both walk the packed [N, row_bytes] weight block by block and unpack each
block through its encoding's `BlockLayout`. With `vectorize`, the lanes of a
lane group become vector ops (the CPU path); without, they become a scalar
`scf.for` over lanes marked `qrt.lanes` (the GPU path maps it to threads).

qmatmul never materializes the dequantized weight. Vectorized, it uses
`sum_k w_k x_k = sum_j scale_j * sum_{k in j} q_k x_k  (+/-)  sum_j offset_j * xsum_j`
where xsum_j is the sum of x over sub-block j, precomputed once per row of x,
so the inner loop is one multiply and one fused multiply-add per weight.
With scalar lanes (the GPU path) each lane instead accumulates its elements'
full values `(scale_j * q (+/-) offset_j) * x`: all per-block work then lives
inside the lane loops, so lanes can run on different threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.dialects import memref
from xdsl.dialects.builtin import IndexType, MemRefType, VectorType, f32

from quantir.compiler.encodings.base import (
    BlockBytes,
    BlockLayout,
    LaneGroup,
    SubBlockScale,
    block_scales,
    code_to_f32,
    dequant_value,
    lane_scale,
)
from quantir.compiler.lowering.emitter import Emitter, Value, vector_of
from quantir.compiler.lowering.loop_roles import role
from quantir.compiler.lowering.subblock_sums import lower_subblock_sums
from quantir.dialects.qrt import PrefetchOp

PARTIAL_SUMS = 4
"""Accumulators per qmatmul tile (split among its rows of x) on the CPU."""

PREFETCH_BYTES = 4096
"""How far ahead of the block being unpacked a CPU qmatmul prefetches."""


def _scales_needed(layout: BlockLayout, group: LaneGroup) -> list[int]:
    return sorted({j for es in group.elements for j in BlockLayout.sub_blocks_of(es)})


def _for_lanes(
    e: Emitter,
    blk: BlockBytes,
    vectorize: bool,
    body: Callable[[Emitter, BlockBytes, Sequence[Value]], Sequence[Value] | None],
    carried: Sequence[Value] = (),
) -> Sequence[Value]:
    """Run `body` once over vector lanes, or in a scalar loop over the lanes.

    The scalar loop runs over chunks of the layout's `gpu_lane_width` lanes
    (vectors of that width: one GPU thread each, wide loads).
    """
    if vectorize:
        return body(e, blk, carried) or ()
    width = blk.width

    def lane_body(ie: Emitter, chunk: Value, c: Sequence[Value]):
        lane = ie.mul(chunk, width) if width > 1 else chunk
        lane_blk = BlockBytes(
            ie, blk.mem, blk.row, blk.base, blk.lanes, lane, width, blk.base_align
        )
        return body(ie, lane_blk, c)

    return e.for_(0, blk.lanes // width, 1, lane_body, carried, role("lanes"))


def _scalar_block(
    e: Emitter, layout: BlockLayout, packed: Value, row: Value, base: Value
) -> BlockBytes:
    """The block's bytes for scalar (GPU) code: wide lanes, the block's alignment."""
    width = layout.gpu_lane_width
    bs = layout.block_size
    return BlockBytes(e, packed, row, base, layout.lanes, None, width, min(16, bs & -bs))


def _float_align(es_first: int, width: int) -> int:
    """Byte alignment of `width` f32 at element es_first + lane of a block (lane % width == 0).

    Rows of x and out are K floats (K a multiple of 32) and buffers start
    aligned, so it is the alignment of the element index times 4, up to 16.
    """
    first = es_first if es_first else width
    return min(16, 4 * min(width, first & -first))


def lower_dequantize(
    e: Emitter,
    layout: BlockLayout,
    packed: Value,
    out: Value,
    vectorize: bool,
    indices: Value | None = None,
) -> None:
    """out[n, :] = dequantize(packed[n, :]) for every row, bit-identical to ggml.

    With `indices` (a 1-D i32 or i64 buffer: quant.gather), out[i, :] =
    dequantize(packed[indices[i], :]) instead: the same unpacking, reading the
    row the index names.
    """
    out_t = out.type
    assert isinstance(out_t, MemRefType)
    k = out_t.get_shape()[1]
    epb, bs, lanes = layout.elements_per_block, layout.block_size, layout.lanes
    if indices is None:
        n_rows = e.dim(packed, 0)
    else:
        n_rows = e.dim(indices, 0)
        last_row = e.sub(e.dim(packed, 0), 1)

    def block_body(e: Emitter, ivs: Sequence[Value]) -> None:
        row, b = ivs
        src = row if indices is None else _table_row(e, indices, row, last_row)
        # One lane per GPU thread (no wide lanes): consecutive threads store
        # consecutive floats. Measured on an H200, wide lanes' 16-byte stores
        # from threads 32-64 bytes apart ran at 21-47% of copy bandwidth,
        # these coalesced ones at 41-85%.
        blk = BlockBytes(e, packed, src, e.mul(b, bs), lanes, None)
        hdr = layout.header(blk)
        scale = block_scales(layout, blk, hdr, vectorize and layout.provides_scale_vectors)
        col0 = e.mul(b, epb)
        for group in layout.groups:
            for j in _scales_needed(layout, group):
                scale(j)  # emitted here, outside any lane loop

            def lanes_body(ie: Emitter, lblk: BlockBytes, _c, group=group):
                srcs = [lblk.lane_bytes(off) for off in group.sources]
                for es in group.elements:
                    q = es.unpack(ie, lblk, srcs)
                    qf = code_to_f32(ie, q, es.signed)
                    v = dequant_value(ie, layout, qf, lane_scale(lblk, es, scale))
                    col = ie.add(col0, es.first)
                    if lblk.lane is not None:
                        col = ie.add(col, lblk.lane)
                    # Non-temporal stores: the output is written once and is
                    # usually far larger than the caches.
                    ie.vstore(v, out, [row, col], nontemporal=vectorize)

            _for_lanes(e, blk, vectorize, lanes_body)

    e.parallel([0, 0], [n_rows, k // epb], block_body, role("rows", "lanes"))


def _table_row(e: Emitter, indices: Value, i: Value, last_row: Value) -> Value:
    """The table row that indices[i] names, clamped to [0, last_row].

    The runtime refuses out-of-range indices before any kernel runs; the
    clamp is what keeps compiled code inside the table when it is called
    some other way. Unsigned, so a negative index (huge once sign-extended)
    clamps too.
    """
    return e.minui(e.index_cast(e.load(indices, [i]), IndexType()), last_row)


def lower_qmatmul(
    e: Emitter,
    layout: BlockLayout,
    x: Value,
    packed: Value,
    y: Value,
    vectorize: bool,
    m_tile: int,
) -> None:
    """y[m, n] = sum_k x[m, k] * dequantize(packed)[n, k] for x [M, K], y [M, N]."""
    xt = x.type
    assert isinstance(xt, MemRefType)
    k = xt.get_shape()[1]
    epb, bs, lanes = layout.elements_per_block, layout.block_size, layout.lanes
    nsub = layout.sub_blocks
    vector_scales = vectorize and layout.provides_scale_vectors
    use_xsum = vectorize and layout.has_offsets
    xsum = lower_subblock_sums(e, x, layout.sub_block_size, vectorize) if use_xsum else None
    m = e.dim(x, 0)
    n_rows = e.dim(packed, 0)
    acc_t = vector_of(f32, lanes) if vectorize else f32
    off_t = vector_of(f32, nsub) if vector_scales else f32

    def tile(e: Emitter, row: Value, m0: Value, t: int) -> None:
        # Independent partial sums per row of x keep several FMA chains in
        # flight (one chain would be bound by the FMA latency).
        parts = max(1, PARTIAL_SUMS // t) if vectorize else 1
        zeros = [e.const(0.0, acc_t) for _ in range(t * parts)]
        off_zeros = [e.const(0.0, off_t) for _ in range(t)] if xsum is not None else []
        counter = [0]  # element sets emitted so far in the block: picks the partial sum

        # One scale for the whole block (Q4_0, Q8_0, ...): sum q*x over the
        # block first and scale once, one multiply per block instead of one
        # per element set.
        scale_once = vectorize and layout.sub_blocks == 1

        def block_body(e: Emitter, b: Value, carried: Sequence[Value]) -> list[Value]:
            accs, offs = list(carried[: t * parts]), list(carried[t * parts :])
            counter[0] = 0
            base = e.mul(b, bs)
            if vectorize and PREFETCH_BYTES:
                # Ask for the bytes PREFETCH_BYTES ahead (past the row's end
                # this is the next row's start: harmless, a prefetch never
                # faults).
                e.op(PrefetchOp(packed, [row, e.add(base, PREFETCH_BYTES)]))
            if vectorize:
                blk = BlockBytes(e, packed, row, base, lanes, None)
            else:
                blk = _scalar_block(e, layout, packed, row, base)
            hdr = layout.header(blk)
            scale = block_scales(layout, blk, hdr, vector_scales)
            col0 = e.mul(b, epb)
            block_sums: list[Value | None] = [None] * t
            for group in layout.groups:
                for j in _scales_needed(layout, group):
                    scale(j)

                def lanes_body(ie: Emitter, lblk: BlockBytes, c: Sequence[Value], group=group):
                    c = list(c)
                    srcs = [lblk.lane_bytes(off) for off in group.sources]
                    for es in group.elements:
                        q = es.unpack(ie, lblk, srcs)
                        wide = lblk.width > 1
                        qf = code_to_f32(ie, q, es.signed, no_convert=wide)
                        col = ie.add(col0, es.first)
                        if lblk.lane is not None:
                            col = ie.add(col, lblk.lane)
                        if wide:
                            _scalar_set(ie, layout, lblk, es, scale, qf, x, m0, col, t, c)
                            continue
                        xvs = [
                            ie.vload(x, [ie.add(m0, i), col], lanes if vectorize else 1)
                            for i in range(t)
                        ]
                        if scale_once:
                            for i in range(t):
                                prev = block_sums[i]
                                block_sums[i] = (
                                    ie.mulf(qf, xvs[i], True)
                                    if prev is None
                                    else ie.fma(qf, xvs[i], prev)
                                )
                            continue
                        s: SubBlockScale = lane_scale(lblk, es, scale)
                        if xsum is None:
                            w = dequant_value(ie, layout, qf, s)
                        else:
                            w = ie.mulf(qf, s.scale, True)
                        part = counter[0] % parts
                        counter[0] += 1
                        for i in range(t):
                            slot = i * parts + part
                            c[slot] = ie.fma(w, xvs[i], c[slot])
                    return c

                accs = list(_for_lanes(e, blk, vectorize, lanes_body, accs))
            if scale_once:
                d = blk.splat(scale(0).scale)
                for i in range(t):
                    sum_i = block_sums[i]
                    assert sum_i is not None
                    accs[i * parts] = e.fma(d, sum_i, accs[i * parts])
            if xsum is not None:
                offs = accumulate_offsets(e, scale, nsub, xsum, m0, b, t, offs)
            return [*accs, *offs]

        results = e.for_(0, k // epb, 1, block_body, [*zeros, *off_zeros], role("reduction"))
        sign = layout.offset_sign
        for i in range(t):
            acc = results[i * parts]
            for p in range(1, parts):
                acc = e.addf(acc, results[i * parts + p], True)
            total = e.reduce_add(acc)
            if xsum is not None:
                off = e.reduce_add(results[t * parts + i])
                total = e.addf(total, off, True) if sign > 0 else e.subf(total, off, True)
            e.store(total, y, [e.add(m0, i), row])

    def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
        (row,) = ivs
        m_full = e.sub(m, e.remui(m, m_tile)) if m_tile > 1 else e.index(0)
        if m_tile > 1:
            e.for_(0, m_full, m_tile, lambda ie, m0, _c: tile(ie, row, m0, m_tile))
        e.for_(m_full, m, 1, lambda ie, m0, _c: tile(ie, row, m0, 1))

    e.parallel([0], [n_rows], row_body, role("rows", "warp"))
    if xsum is not None:
        e.op(memref.DeallocOp.get(xsum))


def _scalar_set(
    e: Emitter,
    layout: BlockLayout,
    blk: BlockBytes,
    es,
    scale: Callable[[int], SubBlockScale],
    qf: Value,
    x: Value,
    m0: Value,
    col: Value,
    t: int,
    accs: list[Value],
) -> None:
    """Scalar code (one GPU thread's lanes): accs[i] += sum over the lanes of w * x[m0+i].

    The lanes share one sub-block, so `scale * sum q*x (+/-) offset * sum x`:
    one FMA per weight (and one add for formats with offsets).
    """
    s = lane_scale(blk, es, scale)
    width = blk.width

    def scalar(v: Value | None) -> Value | None:
        if v is None or width == 1:
            return v
        return e.extract(v, 0)  # a splat: every lane holds the same parameter

    sc, off = scalar(s.scale), scalar(s.offset)
    qs = [qf] if width == 1 else [e.extract(qf, j) for j in range(width)]
    for i in range(t):
        xv = e.vload(x, [e.add(m0, i), col], width, align=_float_align(es.first, width))
        xs = [xv] if width == 1 else [e.extract(xv, j) for j in range(width)]
        dot = e.mulf(qs[0], xs[0], True)
        for j in range(1, width):
            dot = e.fma(qs[j], xs[j], dot)
        accs[i] = e.fma(sc, dot, accs[i])
        if off is not None:
            total = xs[0]
            for j in range(1, width):
                total = e.addf(total, xs[j], True)
            term = e.mulf(off, total, True)
            sign = layout.offset_sign
            accs[i] = e.addf(accs[i], term, True) if sign > 0 else e.subf(accs[i], term, True)


def accumulate_offsets(
    e: Emitter,
    scale: Callable[[int], SubBlockScale],
    nsub: int,
    xsum: Value,
    m0: Value,
    b: Value,
    t: int,
    offs: list[Value],
) -> list[Value]:
    """offs[i] += offset_j * xsum[m0+i, b*nsub + j] for every sub-block j."""
    vecs = getattr(scale, "vectors", None)
    base = e.mul(b, nsub)
    out = list(offs)
    for i in range(t):
        row = e.add(m0, i)
        if vecs is not None and vecs.offsets is not None and isinstance(out[i].type, VectorType):
            out[i] = e.fma(vecs.offsets, e.vload(xsum, [row, base], nsub), out[i])
            continue
        for j in range(nsub):
            s = scale(j)
            assert s.offset is not None
            xs = e.load(xsum, [row, e.add(base, j)])
            out[i] = e.fma(s.offset, xs, out[i])
    return out
