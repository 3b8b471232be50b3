"""qmatmul over GGUF block formats with integer dot products (the CPU's default path).

x is quantized once per call to int8 runs of 32 with one f32 scale each
(`activation_quant`). Weight codes stay integers: each run of 32 consecutive
weights of a block is unpacked to its unsigned stored codes u (`code + code_bias`,
a vector<32xi8>) and multiplied with the matching 32 activation codes by one
`qrt.dot_u8i8`, eight 32-bit lanes of four products each. With
value = scale_j * (u - bias) (+/-) offset_j and x ~= xd * xq:

    sum_k w_k x_k ~= sum_runs sum_lanes (scale_j * xd) * dot_lane
                     - sum_j (bias * scale_j -/+ offset_j) * qsum_j

where j is the sub-block of a lane (a lane's four weights never straddle a
sub-block: sub-blocks are 16 or 32 weights long) and qsum_j the sum of the
quantized x over sub-block j, so that the bias cancels exactly and the only
error is that of quantizing x. Lanes stay in vectors until the end of the
row: per run, one dot, one int->float conversion and one fused multiply-add
per row of x.

Q2_K and Q3_K (`BlockLayout.int8_integer_blocks`) sum each block in
integers instead: x takes one scale per block of 256 (`activation_quant`'s
shared scale, on the calls these vector dots take), each dot is a
`qrt.dot_u8i8_scaled` whose lanes are multiplied by their sub-block's integer
scale, and a block costs one conversion and one FMA by d * xd, not one per
dot: the 16-weight sub-blocks otherwise need a lane-scale shuffle, a
conversion and an FMA per 64 weights. Their dots pair runs 128 weights apart
(one 64-byte load of codes shifted by 2j; x stores its runs in that order).

Unpacking a block is shared by `m_tile` rows of x (each gets its own dots);
there, and for formats whose unpacking is heavy, two runs form one 64-byte
dot. A task takes ROW_BLOCK weight rows and walks x in chunks that stay in
L2. The float path (`gguf_kernels.lower_qmatmul`) stays available and exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.dialects import memref
from xdsl.dialects.builtin import MemRefType, VectorType, f32, i16, i32

from quantir.compiler.encodings.base import (
    BlockBytes,
    BlockLayout,
    ElementSet,
    SubBlockScale,
    block_scales,
)
from quantir.compiler.lowering import gguf_amx
from quantir.compiler.lowering.activation_quant import ACTIVATION_BLOCK, lower_quantize_rows
from quantir.compiler.lowering.emitter import Emitter, Value
from quantir.compiler.lowering.gguf_kernels import PARTIAL_SUMS, PREFETCH_BYTES
from quantir.compiler.lowering.int8_codes import RUN, concat, offset_term, runs_of, stored_codes
from quantir.compiler.lowering.loop_roles import role
from quantir.dialects.qrt import PrefetchOp

DOT_LANES = RUN // 4
ROW_BLOCK = 16
"""Weight rows per parallel task (they share each chunk of x from L2)."""
X_CHUNK_BYTES = 1024 * 1024
"""Bytes of int8 x codes a task keeps hot in L2 while it walks its weight rows."""


def dot_units(
    layout: BlockLayout, pair: bool = True
) -> dict[int, list[tuple[tuple[ElementSet, ...], ...]]]:
    """Per lane group (by id), the runs each dot multiplies: with `pair`, pairs of
    contiguous runs (64 bytes, one dot of 16 lanes) where the layout allows,
    else single runs.

    Pairs need per-sub-block scale vectors (to pick 16 lanes' scales with one
    shuffle) and every group's runs to pair up into 64 consecutive weights.
    """
    runs = {id(g): runs_of(g, layout.lanes) for g in layout.groups}
    pairable = (
        pair
        and layout.provides_scale_vectors
        and all(
            len(rs) % 2 == 0
            and all(
                a[0].first % (2 * RUN) == 0 and a[0].first + RUN == b[0].first
                for a, b in zip(rs[::2], rs[1::2])
            )
            for rs in runs.values()
        )
    )
    if pairable:
        return {key: list(zip(rs[::2], rs[1::2])) for key, rs in runs.items()}
    return {key: [(r,) for r in rs] for key, rs in runs.items()}


def int8_supported(layout: BlockLayout) -> bool:
    """Whether the integer-dot path covers this layout (lanes of 16 or 32)."""
    return layout.lanes in (16, 32)


def lower_qmatmul_int8(
    e: Emitter,
    layout: BlockLayout,
    x: Value,
    packed: Value,
    y: Value,
    m_tile: int,
    amx: bool = False,
    amx_min_weights: int = 0,
) -> None:
    """y[m, n] ~= sum_k x[m, k] * dequantize(packed)[n, k], with int8 activations.

    With `amx` (the host has AMX-INT8 tiles) and a layout the tile path covers,
    calls with at least `gguf_amx.min_rows` rows of x take the tile path (for
    weights of at least `amx_min_weights` when N is static)
    (`gguf_amx`), the others these vector dots; one kernel holds both."""
    xt = x.type
    assert isinstance(xt, MemRefType)
    k = xt.get_shape()[1]
    epb, bs, lanes = layout.elements_per_block, layout.block_size, layout.lanes
    nsub, sbs = layout.sub_blocks, layout.sub_block_size
    bias = layout.code_bias
    needs_offsets = layout.has_offsets or bias != 0
    static_n = packed.type.get_shape()[0]
    known_n = static_n if static_n >= 0 else None
    use_amx = amx and gguf_amx.amx_supported(layout, k, known_n, amx_min_weights)
    min_m = gguf_amx.min_rows(sbs) if use_amx else None
    # Formats with integer sub-block scales sum each block in integers
    # (`qrt.dot_u8i8_scaled`), which needs one x scale per block: x shares its
    # scale over each block's span on the calls these vector dots take.
    integer_blocks = layout.int8_integer_blocks
    shared = (epb, min_m) if integer_blocks else None
    int_units = layout.int8_unit_runs if integer_blocks else ()
    # x's runs of 32 are stored in the order the units read them (64 bytes per dot).
    x_order = [first // ACTIVATION_BLOCK for unit in int_units for first in unit]
    xq, xd, qsum = lower_quantize_rows(
        e, x, sbs if needs_offsets else None, shared_scale=shared, run_order=x_order or None
    )
    vector_scales = layout.provides_scale_vectors
    x_blocks = epb // ACTIVATION_BLOCK
    m = e.dim(x, 0)
    n_rows = e.dim(packed, 0)
    off_t = VectorType(f32, [nsub]) if vector_scales else f32

    def tile(e: Emitter, row: Value, m0: Value, t: int) -> None:
        # 64-byte dots halve the dot, conversion and FMA count but run on fewer
        # ports: they pay when several rows of x share the unpacked codes, and
        # for one row only where the layout says so (measured per format).
        units = dot_units(layout, pair=(integer_blocks or t > 1 or layout.int8_pairs_for_one_row))
        runs_per_block = sum(len(r) for r in units.values())
        width = RUN * len(next(iter(units.values()))[0])  # bytes per dot: 32 or 64
        dot_lanes = width // 4
        acc_t = VectorType(f32, [dot_lanes])
        dot_t = VectorType(i32, [dot_lanes])
        parts = max(1, PARTIAL_SUMS // t)
        zeros = [e.const(0.0, acc_t) for _ in range(t * parts)]
        # Offset sums rotate over partial sums too (one block's offsets form a
        # dependent FMA chain with the next block's).
        off_zeros = [e.const(0.0, off_t) for _ in range(t * parts)] if needs_offsets else []

        def one_block(e: Emitter, b: Value, carried: list[Value], u: int) -> list[Value]:
            """Accumulate block b, the u-th of an unrolled step (it picks the partial sums)."""
            count = u * runs_per_block
            accs, offs = carried[: t * parts], carried[t * parts :]
            base = e.mul(b, bs)
            if PREFETCH_BYTES:
                e.op(PrefetchOp(packed, [row, e.add(base, PREFETCH_BYTES)]))
            blk = BlockBytes(e, packed, row, base, lanes, None)
            hdr = layout.header(blk)
            scale = block_scales(layout, blk, hdr, vector_scales)
            col0 = e.mul(b, epb)
            rows = [e.add(m0, i) for i in range(t)]
            zero_dot = e.const(0, dot_t)
            if integer_blocks:
                # Each row's block sum in integers, one conversion and one FMA by
                # d * (x's scale, shared by the block) per block.
                int_scales = _scale_words(e, layout.int_scales(blk, hdr), layout.int_scales_signed)
                sums = [zero_dot] * t
                for at, unit in enumerate(int_units):
                    codes = layout.int8_unit_codes(blk, at)
                    subs = [(first + 4 * lane) // sbs for first in unit for lane in range(RUN // 4)]
                    unit_scales = e.shuffle(int_scales, int_scales, subs)
                    for i in range(t):
                        xv = e.vload(xq, [rows[i], e.add(col0, at * width)], width)
                        sums[i] = e.dot_u8i8_scaled(
                            sums[i], codes, xv, unit_scales, layout.code_bits
                        )
                for i in range(t):
                    xds = e.load(xd, [rows[i], e.mul(b, x_blocks)])
                    factor = e.broadcast(e.mulf(hdr["d"], xds), acc_t)
                    slot = i * parts + u % parts
                    accs[slot] = e.fma(e.sitofp(sums[i]), factor, accs[slot])
            else:
                lane_scales = _lane_scale_source(
                    e, layout, scale, xd, rows, b, col0, x_blocks, dot_lanes
                )
                for group in layout.groups:
                    srcs = [blk.lane_bytes(off) for off in group.sources]
                    for unit in units[id(group)]:
                        codes = concat(e, [stored_codes(e, blk, run, srcs, bias) for run in unit])
                        first = unit[0][0].first
                        for i in range(t):
                            xv = e.vload(xq, [rows[i], e.add(col0, first)], width)
                            dot = e.dot_u8i8(zero_dot, codes, xv, layout.code_bits)
                            slot = i * parts + count % parts
                            accs[slot] = e.fma(e.sitofp(dot), lane_scales(i, first), accs[slot])
                        count += 1
            if needs_offsets:
                slots = [i * parts + u % parts for i in range(t)]
                picked = _accumulate_offsets(
                    e, layout, scale, qsum, rows, b, [offs[j] for j in slots]
                )
                for j, v in zip(slots, picked):
                    offs[j] = v
            return [*accs, *offs]

        def blocks_body(e: Emitter, b0: Value, carried: Sequence[Value], step: int):
            out = list(carried)
            for u in range(step):
                out = one_block(e, e.add(b0, u), out, u)
            return out

        # Blocks with fewer runs than partial sums (Q4_0's one) are unrolled so
        # that consecutive blocks feed different FMA chains.
        unroll = max(1, parts // runs_per_block)
        n_blocks = k // epb
        main = n_blocks - n_blocks % unroll
        results = e.for_(
            0,
            main,
            unroll,
            lambda ie, b, c: blocks_body(ie, b, c, unroll),
            [*zeros, *off_zeros],
            role("reduction"),
        )
        if main < n_blocks:
            results = e.for_(
                main,
                n_blocks,
                1,
                lambda ie, b, c: blocks_body(ie, b, c, 1),
                list(results),
                role("reduction"),
            )
        for i in range(t):
            acc = results[i * parts]
            for p in range(1, parts):
                acc = e.addf(acc, results[i * parts + p], True)
            total = e.reduce_add(acc)
            if needs_offsets:
                off = results[t * parts + i * parts]
                for p in range(1, parts):
                    off = e.addf(off, results[t * parts + i * parts + p], True)
                total = e.subf(total, e.reduce_add(off), True)
            e.store(total, y, [e.add(m0, i), row])

    # Cache blocking for long x (prefill): a task takes ROW_BLOCK weight rows
    # and walks x in chunks of rows whose codes fit in L2, so each chunk is
    # read from L2 for every weight row of the block, and the block's weight
    # rows stay in L2 across the chunks.
    m_chunk = max(m_tile, X_CHUNK_BYTES // k // m_tile * m_tile)

    def rows_of_chunk(e: Emitter, row: Value, c0: Value, c1: Value) -> None:
        if m_tile > 1:
            span = e.sub(c1, c0)
            m_full = e.sub(c1, e.remui(span, m_tile))
            e.for_(c0, m_full, m_tile, lambda ie, m0, _c: tile(ie, row, m0, m_tile))
        else:
            m_full = c0
        e.for_(m_full, c1, 1, lambda ie, m0, _c: tile(ie, row, m0, 1))

    def block_rows(e: Emitter, ivs: Sequence[Value]) -> None:
        r0 = e.mul(ivs[0], ROW_BLOCK)
        r1 = e.minui(e.add(r0, ROW_BLOCK), n_rows)

        def chunk(e: Emitter, c0: Value, _c) -> None:
            c1 = e.minui(e.add(c0, m_chunk), m)
            e.for_(r0, r1, 1, lambda ie, row, _c: rows_of_chunk(ie, row, c0, c1))

        e.for_(0, m, m_chunk, chunk)

    row_blocks = e.divui(e.add(n_rows, ROW_BLOCK - 1), ROW_BLOCK)
    tile_bufs: tuple[Value, ...] = ()
    if min_m is not None:
        assert ROW_BLOCK == gguf_amx.TILE
        xv, xd_t, qsum_t = gguf_amx.prepare_x_tiles(e, xq, xd, qsum, m, sbs)
        tile_bufs = (xv, xd_t, *([qsum_t] if qsum_t is not None else []))

        def either_path(e: Emitter, ivs: Sequence[Value]) -> None:
            with e.if_(e.cmpi("uge", m, min_m)) as te:
                gguf_amx.lower_amx_rows(te, layout, packed, y, m, ivs[0], xv, xd_t, qsum_t)
            with e.if_(e.cmpi("ult", m, min_m)) as ve:
                block_rows(ve, ivs)

        e.parallel([0], [row_blocks], either_path, role("rows", "warp"))
    else:
        e.parallel([0], [row_blocks], block_rows, role("rows", "warp"))
    for buf in (xq, xd, *([qsum] if qsum is not None else []), *tile_bufs):
        e.op(memref.DeallocOp.get(buf))


def _scale_words(e: Emitter, scales: Value, signed: bool) -> Value:
    """vector<Nxi8> scales as vector<Nxi16>, each byte next to its sign byte.

    The same integers as extsi / extui; built from bytes, the per-dot lane
    shuffles of these words (and the backend's doubling) stay byte shuffles
    that LLVM lowers as one `vpermb` per dot, not a shuffle plus an extension.
    """
    n = scales.type.get_shape()[0]
    vt = scales.type
    high = e.shrsi(scales, e.const(7, vt)) if signed else e.const(0, vt)
    pairs = e.shuffle(scales, high, [i // 2 + (n if i % 2 else 0) for i in range(2 * n)])
    return e.bitcast(pairs, VectorType(i16, [n]))


def _lane_scale_source(
    e: Emitter,
    layout: BlockLayout,
    scale: Callable[[int], SubBlockScale],
    xd: Value,
    rows: list[Value],
    b: Value,
    col0: Value,
    x_blocks: int,
    dot_lanes: int,
) -> Callable[[int, int], Value]:
    """(row i, unit start) -> vector<dot_lanes x f32>: scale_j * xd of each lane's sub-block j."""
    sbs = layout.sub_block_size
    vecs = getattr(scale, "vectors", None)
    if vecs is not None:
        # Every sub-block's scale times its activation block's scale, once per row.
        expand = [j * sbs // ACTIVATION_BLOCK for j in range(layout.sub_blocks)]
        combined = []
        for r in rows:
            xds = e.vload(xd, [r, e.mul(b, x_blocks)], x_blocks)
            if x_blocks == 1:
                xds = e.broadcast(xds, VectorType(f32, [1]))
            combined.append(e.mulf(vecs.scales, e.shuffle(xds, xds, expand)))

        def from_vectors(i: int, first: int) -> Value:
            subs = [(first + 4 * lane) // sbs for lane in range(dot_lanes)]
            return e.shuffle(combined[i], combined[i], subs)

        return from_vectors
    cache: dict[tuple[int, int], Value] = {}
    assert dot_lanes == DOT_LANES, "scalar scales take single runs"
    acc_t = VectorType(f32, [DOT_LANES])

    def from_scalars(i: int, first: int) -> Value:
        key = (i, first)
        if key not in cache:
            xds = e.load(xd, [rows[i], e.add(e.mul(b, x_blocks), first // ACTIVATION_BLOCK)])
            subs = [(first + 4 * lane) // sbs for lane in range(DOT_LANES)]
            splats = {
                j: e.broadcast(e.mulf(scale(j).scale, xds), acc_t) for j in dict.fromkeys(subs)
            }
            if len(splats) == 1:
                cache[key] = next(iter(splats.values()))
            else:
                assert len(splats) == 2
                first_j, second_j = splats
                half = subs.index(second_j)
                mask = list(range(half)) + [DOT_LANES + lane for lane in range(half, DOT_LANES)]
                cache[key] = e.shuffle(splats[first_j], splats[second_j], mask)
        return cache[key]

    return from_scalars


def _accumulate_offsets(
    e: Emitter,
    layout: BlockLayout,
    scale: Callable[[int], SubBlockScale],
    qsum: Value,
    rows: list[Value],
    b: Value,
    offs: list[Value],
) -> list[Value]:
    """offs[i] += (bias * scale_j -/+ offset_j) * qsum[j] over the block's sub-blocks.

    qsum holds the sums of the quantized x, the same x the dots multiplied:
    the bias then cancels exactly, and the error of the whole row is
    sum_k w_k (xq_k xd - x_k) with the true (centred) weights w_k, not the
    larger unsigned codes.
    """
    nsub = layout.sub_blocks
    vecs = getattr(scale, "vectors", None)
    base = e.mul(b, nsub)
    out = list(offs)
    if vecs is not None:
        terms = offset_term(e, layout, SubBlockScale(vecs.scales, vecs.offsets))
        for i, r in enumerate(rows):
            out[i] = e.fma(terms, e.vload(qsum, [r, base], nsub), out[i])
        return out
    terms = [offset_term(e, layout, scale(j)) for j in range(nsub)]
    for i, r in enumerate(rows):
        for j in range(nsub):
            out[i] = e.fma(terms[j], e.load(qsum, [r, e.add(base, j)]), out[i])
    return out
