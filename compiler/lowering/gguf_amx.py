"""qmatmul over GGUF block formats with AMX tiles (prefill, hosts with AMX-INT8).

The same arithmetic as the integer-dot path (`gguf_int8`): x quantized to
int8 runs of 32, weight codes kept as their unsigned stored bytes, the bias
and mins folded into per-sub-block offsets against the sums of the quantized
x. What changes is the machine it is shaped for: one `amx.tile_muli` (the
`tdpbusd` instruction) multiplies a 16 x 32 tile of weight codes by a 32 x 16
tile of x codes into 16 x 16 exact int32 dot products, 8192 multiply-adds,
where a 64-byte vector dot does 64.

A sub-block has one scale, so each tile product covers exactly one sub-block
(K = 32 bytes; 16 for Q2_K, Q3_K and Q6_K, whose sub-blocks are 16 weights
long); after it, its 16 x 16 integer sums are scaled into 16 float
accumulator vectors, one per weight row, 16 rows of x in the lanes:

    acc[n][m] += (scale[n, j] * xd[m, j]) * dot[n][m] + (-offset[n, j]) * qsum[m, j]

Data prepared per call / per task:
- x codes in VNNI tile layout, `xv[t * K/4 + k/4, 4 * (m % 16) + k % 4]` for
  m-tile t = m / 16 (a memref<?x64xi8>; the rows of one run of one m-tile
  are 8 consecutive rows of 64 bytes: one tile load), and the scales and
  sums transposed to `[t, r, m % 16]`, so 16 rows of x load as one vector;
- per task of 16 weight rows: their codes unpacked once, sub-block-major
  (`[K / step, 16, step]` bytes on the kernel's stack: each left-hand tile is
  contiguous, reused by every m-tile), with the scale and negated offset of
  every (sub-block, row).

Rows of x past M (the last m-tile) and weight rows past N (the last task)
compute garbage lanes that are never stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import memref
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, VectorType, f32, i8, i32

from quantir.compiler.encodings.base import BlockBytes, BlockLayout, block_scales
from quantir.compiler.lowering.emitter import Emitter, Value
from quantir.compiler.lowering.int8_codes import RUN, offset_term, runs_of, stored_codes
from quantir.compiler.lowering.loop_roles import role
from quantir.dialects.amx import TileLoadOp, TileMulIOp, TileStoreOp, TileType, TileZeroOp

TILE = 16
"""Rows of x per m-tile and weight rows per task (the tile's 16 rows and 16 columns)."""


def min_rows(step: int) -> int:
    """Rows of x from which a call takes the tile path (below it, the vector dots).

    Measured per sub-block length: with 32-weight steps tiles win from one
    full tile of x (16 rows); with 16-weight steps (Q2_K, Q3_K, Q6_K) each
    product carries half the work for the same scaling, and tiles win from
    two (at 16 rows they run at 0.7-0.85x the vector dots).
    """
    return TILE if step == 32 else 2 * TILE


ACC_TILE = TileType(TILE, TILE, i32)
DEPTH = 4
"""Tile products in flight ahead of the scaling (buffers of int32 sums)."""


MAX_K = 32768
"""Longest row the tile path takes: a task's codes (16 x K bytes) live on the
kernel's stack, which worker threads have a few MB of."""


AUTO_MIN_WEIGHTS = 1 << 20
"""Smallest weight (N * K, when N is static) `amx=auto` gives a tile path. The
tile body roughly doubles a qmatmul kernel's compile time (about 0.3 s here);
below a million weights a prefill call takes well under a millisecond either
way, so small matrices (a test model's) keep the vector dots alone."""


def amx_supported(layout: BlockLayout, k: int, n: int | None = None, min_weights: int = 0) -> bool:
    """Whether the tile path covers this layout and shape: runs of 32 weights
    with one scale each, rows short enough for the stack scratch, and (when N
    is known) at least `min_weights` weights."""
    big_enough = n is None or n * k >= min_weights
    return (
        layout.sub_block_size in (16, 32) and layout.lanes in (16, 32) and k <= MAX_K and big_enough
    )


def when_tiled(e: Emitter, m: Value, count: Value, min_m: int) -> Value:
    """`count` when a call with `m` rows of x takes the tile path, else 0.

    In host code's integer arithmetic (no select there): m // min_m is 0
    exactly below the threshold, and scaled far past any count otherwise.
    """
    return e.minui(count, e.mul(e.divui(m, min_m), 1 << 40))


def prepare_x_tiles(
    e: Emitter, xq: Value, xd: Value, qsum: Value | None, m: Value, step: int
) -> tuple[Value, Value, Value | None]:
    """x's codes in VNNI tile layout and its scales and sums transposed per m-tile.

    Below `min_rows(step)` rows nothing is allocated or copied (empty buffers).
    """
    k = xq.type.get_shape()[1]
    runs = k // RUN
    tiles = when_tiled(e, m, e.divui(e.add(m, TILE - 1), TILE), min_rows(step))
    xv = e.v(memref.AllocOp([e.mul(tiles, k // 4)], [], MemRefType(i8, [DYNAMIC_INDEX, 64])))
    xd_t = e.v(memref.AllocOp([tiles], [], MemRefType(f32, [DYNAMIC_INDEX, runs, TILE])))
    qsum_t = None
    if qsum is not None:  # sums per `step` weights (qsum's own runs)
        sums_t = MemRefType(f32, [DYNAMIC_INDEX, k // step, TILE])
        qsum_t = e.v(memref.AllocOp([tiles], [], sums_t))

    def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
        (row,) = ivs
        t, lane = e.divui(row, TILE), e.remui(row, TILE)
        base = e.mul(t, k // 4)

        def copy_run(e: Emitter, r: Value, real: bool) -> None:
            # Padding rows (past M) get zeros: their lanes are computed and
            # dropped, and must not hold denormals (slow) or NaNs.
            if real:
                codes = e.vload(xq, [row, e.mul(r, RUN)], RUN)
            else:
                codes = e.const(0, VectorType(i8, [RUN]))
            for g in range(RUN // 4):
                quad = e.shuffle(codes, codes, list(range(4 * g, 4 * g + 4)))
                e.vstore(quad, xv, [e.add(base, e.add(e.mul(r, RUN // 4), g)), e.mul(lane, 4)])
            zero = e.f32_const(0.0)
            e.store(e.load(xd, [row, r]) if real else zero, xd_t, [t, r, lane])
            for h in range(RUN // step if qsum is not None else 0):
                j = e.add(e.mul(r, RUN // step), h)
                e.store(e.load(qsum, [row, j]) if real else zero, qsum_t, [t, j, lane])

        with e.if_(e.cmpi("ult", row, m)) as re:
            re.for_(0, runs, 1, lambda ie, r, _c: copy_run(ie, r, True))
        with e.if_(e.cmpi("uge", row, m)) as pe:
            pe.for_(0, runs, 1, lambda ie, r, _c: copy_run(ie, r, False))

    e.parallel([0], [e.mul(tiles, TILE)], row_body, role("rows"))
    return xv, xd_t, qsum_t


def lower_amx_rows(
    e: Emitter,
    layout: BlockLayout,
    packed: Value,
    y: Value,
    m: Value,
    task: Value,
    xv: Value,
    xd_t: Value,
    qsum_t: Value | None,
) -> None:
    """Task `task`: weight rows [16 task, 16 task + 16) against every row of x."""
    k = xd_t.type.get_shape()[1] * RUN
    step = layout.sub_block_size  # weights per tile product: one scale each
    steps = k // step
    codes_tile = TileType(TILE, step, i8)
    x_tile = TileType(step // 4, 4 * TILE, i8)
    epb, bs, lanes = layout.elements_per_block, layout.block_size, layout.lanes
    n_rows = e.dim(packed, 0)
    r0 = e.mul(task, TILE)
    rows = e.sub(e.minui(e.add(r0, TILE), n_rows), r0)
    needs_offsets = qsum_t is not None

    # Scratch on the kernel's stack (allocas sit in the entry block: one per call),
    # step-major: each step's 16 rows of codes are one contiguous tile (stride =
    # step bytes) and its 16 scales and offsets one cache line.
    codes = _stack(e, i8, [steps, TILE, step])
    scales = _stack(e, f32, [steps, TILE])
    offsets = _stack(e, f32, [steps, TILE]) if needs_offsets else None
    dots = _stack(e, i32, [DEPTH, TILE, TILE])
    out = _stack(e, f32, [TILE, TILE])

    # Unpack the task's weight rows once: codes, and per sub-block its scale and offset.
    def unpack_row(e: Emitter, n: Value, _c) -> None:
        row = e.add(r0, n)

        def block(e: Emitter, b: Value, _c) -> None:
            blk = BlockBytes(e, packed, row, e.mul(b, bs), lanes, None)
            hdr = layout.header(blk)
            scale = block_scales(layout, blk, hdr, False)
            step0 = e.mul(b, layout.sub_blocks)  # the block's first step (one per sub-block)
            for group in layout.groups:
                srcs = [blk.lane_bytes(off) for off in group.sources]
                for run in runs_of(group, lanes):
                    first = run[0].first
                    u = stored_codes(e, blk, run, srcs, layout.code_bias)
                    for h in range(RUN // step):  # a run of 32 is one or two steps
                        part = (
                            u
                            if step == RUN
                            else e.shuffle(u, u, list(range(h * step, (h + 1) * step)))
                        )
                        at = e.add(step0, (first // step) + h)
                        e.vstore(part, codes, [at, n, e.index(0)])
            for j in range(layout.sub_blocks):
                s = scale(j)
                e.store(s.scale, scales, [e.add(step0, j), n])
                if offsets is not None:
                    neg = e.mulf(offset_term(e, layout, s), -1.0)
                    e.store(neg, offsets, [e.add(step0, j), n])

        e.for_(0, k // epb, 1, block, attrs=role("reduction"))

    e.for_(0, rows, 1, unpack_row)

    vf = VectorType(f32, [TILE])
    row = [e.index(0)]

    def m_tile(e: Emitter, t: Value, _c) -> None:
        # Software-pipelined: the tile product of step r + DEPTH is issued while
        # step r's sums are scaled. The scaling reads the sums back from memory
        # (`tilestored` then vector loads), and a load cannot take its data
        # from a pending tile store: it waits until the store completes.
        def product(e: Emitter, r: Value) -> None:
            zero = e.v(TileZeroOp(ACC_TILE))
            a = e.v(TileLoadOp(codes, [r, row[0], row[0]], codes_tile))
            xrow = e.add(e.mul(t, k // 4), e.mul(r, step // 4))
            b = e.v(TileLoadOp(xv, [xrow, row[0]], x_tile))
            c = e.v(TileMulIOp(a, b, zero, True, False))
            e.op(TileStoreOp(dots, [e.remui(r, DEPTH), row[0], row[0]], c))

        def scale(e: Emitter, r: Value) -> None:
            run = r if step == RUN else e.divui(r, RUN // step)
            xs = e.vload(xd_t, [t, run, row[0]], TILE)
            qs = e.vload(qsum_t, [t, r, row[0]], TILE) if qsum_t is not None else None
            slot = e.remui(r, DEPTH)

            # A loop over the 16 weight rows, accumulators in `out`: LLVM unrolls
            # it and keeps the accumulators in registers (the IR stays small,
            # which keeps cold compiles short).
            def one_row(e: Emitter, n: Value, _c) -> None:
                dot = e.vload(dots, [slot, n, row[0]], TILE)
                w = e.broadcast(e.load(scales, [r, n]), vf)
                acc = e.fma(e.mulf(e.sitofp(dot), xs, True), w, e.vload(out, [n, row[0]], TILE))
                if offsets is not None:
                    off = e.broadcast(e.load(offsets, [r, n]), vf)
                    acc = e.fma(off, qs, acc)
                e.vstore(acc, out, [n, row[0]])

            e.for_(0, TILE, 1, one_row)

        def steady(e: Emitter, r: Value, _c) -> None:
            scale(e, r)
            with e.if_(e.cmpi("ult", r, steps - DEPTH)) as pe:
                product(pe, pe.add(r, DEPTH))

        ahead = min(DEPTH, steps)
        e.for_(0, ahead, 1, lambda ie, r, _c: product(ie, r))
        zero = e.const(0.0, vf)
        e.for_(0, TILE, 1, lambda ie, n, _c: ie.vstore(zero, out, [n, row[0]]))
        e.for_(0, steps, 1, steady, attrs=role("reduction"))
        m0 = e.mul(t, TILE)
        valid_m = e.sub(e.minui(e.add(m0, TILE), m), m0)

        def store_row(e: Emitter, i: Value, _c) -> None:
            def store_col(e: Emitter, n: Value, _c) -> None:
                e.store(e.load(out, [n, i]), y, [e.add(m0, i), e.add(r0, n)])

            e.for_(0, rows, 1, store_col)

        e.for_(0, valid_m, 1, store_row)

    e.for_(0, e.divui(e.add(m, TILE - 1), TILE), 1, m_tile)


def _stack(e: Emitter, elem, shape: list[int]) -> Value:
    return e.v(memref.AllocaOp.get(elem, shape=shape))
