"""Loop nests for GPTQ dequantize and qmatmul.

GPTQ packs along K within each column, so qmatmul vectorizes across columns:
a vector of V adjacent columns loads V consecutive words of a qweight row
(contiguous), unpacks the same code of each, and accumulates
`x[m, k] * q[k, n0:n0+V]`. Vectorized code streams a chunk of columns at a
time, row by row, keeping per-column partial sums in a small stack buffer.
When groups are contiguous runs of whole words (no desc_act, group_size a
multiple of the run length), the zero point leaves the inner loop:

    sum_{k in g} x_k * s_g * (q_k - z_g) = s_g * (sum_{k in g} x_k q_k - z_g * xsum_g)

with xsum_g precomputed per row of x. Otherwise (desc_act, odd group sizes)
each code is dequantized in the inner loop through g_idx. Zero points are
unpacked once into a float [G, N] buffer (stored zero + 1 for the v1
format). Without `vectorize`, V is 1 and columns become the parallel
dimension (one GPU thread per column).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import memref
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, f32, i32

from quantir.compiler.encodings.gptq import code_at, code_in_run
from quantir.compiler.lowering import gptq_int8, gptq_scalar
from quantir.compiler.lowering.emitter import Emitter, Value, vector_of
from quantir.compiler.lowering.gptq_chunks import VECTOR, stream_chunk
from quantir.compiler.lowering.loop_roles import role
from quantir.compiler.lowering.subblock_sums import lower_subblock_sums
from quantir.dialects.encoding import codes_per_run
from quantir.dialects.qrt import PrefetchOp
from quantir.dialects.quant import GPTQConfigAttr

CHUNK = 1024
"""Default number of adjacent columns one vectorized qmatmul task streams
through together: each row of qweight is then read as CHUNK*4 contiguous
bytes, which the hardware prefetcher follows (a 64-byte tile per row would
touch a new page on every load)."""
PARTIAL_SUMS = 4
PREFETCH_ROWS = 4
"""How many qweight rows ahead the column-chunk qmatmul prefetches."""
DEQUANT_PREFETCH_STEPS = 4
"""How many steps (of 16 or 32 codes) ahead the column-group dequantize prefetches."""


class _Gptq:
    def __init__(self, e: Emitter, config: GPTQConfigAttr, packed: Sequence[Value], k: int):
        self.qweight, self.qzeros, self.scales, self.g_idx = packed
        self.bits = config.bits.data
        gs = config.group_size.data
        self.group_size = k if gs == -1 else gs
        self.desc_act = bool(config.desc_act.value.data)
        self.zero_offset = 1 if config.checkpoint_format.data == "gptq" else 0
        self.k = k
        self.groups = k // self.group_size
        self.run_codes, self.run_words = codes_per_run(self.bits)
        self.fast = not self.desc_act and self.group_size % self.run_codes == 0
        self.n = e.dim(self.qweight, 1)
        self.word_rows = e.dim(self.qweight, 0)

    def group_of(self, e: Emitter, k: Value) -> Value:
        if self.desc_act:
            g = e.index_cast(e.load(self.g_idx, [k]), e.index(0).type)
            # A corrupt g_idx must not make the kernel read out of bounds:
            # clamp as unsigned (negative values become huge, then G-1).
            return e.minui(g, self.groups - 1)
        return e.divui(k, self.group_size)

    def code(self, e: Emitter, k: Value, col: Value, lanes: int) -> Value:
        """q[k, col:col+lanes] (i32 lanes) for a dynamic k."""
        bit = e.mul(k, self.bits)
        row = e.divui(bit, 32)
        word = e.vload(self.qweight, [row, col], lanes)
        nxt = word
        if 32 % self.bits:
            last = e.sub(self.word_rows, 1)
            nxt_row = e.minui(e.add(row, 1), last)
            nxt = e.vload(self.qweight, [nxt_row, col], lanes)
        return code_at(e, bit, word, nxt, self.bits)

    def zero_code(self, e: Emitter, g: Value, n: Value) -> Value:
        """z[g, n] (i32): the stored zero of column n in group g, plus the format's offset."""
        bits = self.bits
        bit = e.mul(n, bits)
        col = e.divui(bit, 32)
        word = e.load(self.qzeros, [g, col])
        nxt = word
        if 32 % bits:
            last = e.sub(e.dim(self.qzeros, 1), 1)
            nxt = e.load(self.qzeros, [g, e.minui(e.add(col, 1), last)])
        z = code_at(e, bit, word, nxt, bits)
        if self.zero_offset:
            z = e.add(z, self.zero_offset)
        return z

    def zeros_as_float(self, e: Emitter) -> Value:
        """zf[g, n] = stored zero + offset, as f32, in a new [G, N] buffer."""
        zbuf = e.v(memref.AllocOp([self.n], [], MemRefType(f32, [self.groups, DYNAMIC_INDEX])))

        def body(e: Emitter, ivs: Sequence[Value]) -> None:
            g, n = ivs
            e.store(e.sitofp(self.zero_code(e, g, n), f32), zbuf, [g, n])

        e.parallel([0, 0], [self.groups, self.n], body, role("rows"))
        return zbuf

    def scales_at(self, e: Emitter, g: Value, col: Value, lanes: int) -> Value:
        return e.extf(e.vload(self.scales, [g, col], lanes), f32)


def lower_dequantize(
    e: Emitter, config: GPTQConfigAttr, packed: Sequence[Value], out: Value, vectorize: bool
) -> None:
    """out[n, k] = scales[g, n] * (q[k, n] - z[g, n]), float32(scale) * float32(q - z)."""
    out_t = out.type
    assert isinstance(out_t, MemRefType)
    k = out_t.get_shape()[1]
    gp = _Gptq(e, config, packed, k)
    if not vectorize and gp.fast:
        gptq_scalar.lower_dequantize(e, gp, out)
        return
    zbuf = gp.zeros_as_float(e)
    bits = gp.bits
    # Vectorized, 16 codes (one 64-byte line of output) per step when whole
    # words hold whole codes and groups allow it.
    # (3-bit runs are 32 codes: two output lines per step.)
    per_step = max(16, gp.run_codes) if vectorize else gp.run_codes
    if per_step % gp.run_codes or (gp.group_size % per_step):
        per_step = gp.run_codes
    step_words = per_step * bits // 32
    steps = gp.group_size // per_step
    by_columns = gp.fast and vectorize and per_step >= VECTOR

    def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
        (n,) = ivs
        if gp.fast:

            def group_body(e: Emitter, g: Value, _c) -> None:
                s = gp.scales_at(e, g, n, 1)
                z = e.load(zbuf, [g, n])

                def step_body(e: Emitter, r: Value, _c) -> None:
                    k0 = e.add(e.mul(g, gp.group_size), e.mul(r, per_step))
                    row0 = e.divui(e.mul(k0, bits), 32)
                    words = [e.load(gp.qweight, [e.add(row0, w), n]) for w in range(step_words)]
                    if vectorize:
                        q = e.andi(_codes_vector(e, words, per_step, bits), (1 << bits) - 1)
                        ft = vector_of(f32, per_step)
                        v = e.mulf(e.broadcast(s, ft), e.subf(e.uitofp(q), e.broadcast(z, ft)))
                        e.vstore(v, out, [n, k0], nontemporal=True)
                        return
                    for j in range(per_step):
                        q = e.uitofp(code_in_run(e, words, j, bits))
                        e.store(e.mulf(s, e.subf(q, z)), out, [n, e.add(k0, j)])

                e.for_(0, steps, 1, step_body)

            e.for_(0, gp.groups, 1, group_body)
            return

        def k_body(e: Emitter, kk: Value, _c) -> None:
            g = gp.group_of(e, kk)
            q = e.uitofp(gp.code(e, kk, n, 1))
            s = gp.scales_at(e, g, n, 1)
            e.store(e.mulf(s, e.subf(q, e.load(zbuf, [g, n]))), out, [n, kk])

        e.for_(0, k, 1, k_body)

    start: Value = e.index(0)
    if by_columns:
        # 16 output rows at a time: each 64-byte line of qweight words is
        # used by all 16 while it is in L1 (row by row, one output row would
        # touch a new page of qweight at every word).
        column_groups = e.divui(gp.n, VECTOR)

        def columns_body(e: Emitter, ivs: Sequence[Value]) -> None:
            n0 = e.mul(ivs[0], VECTOR)

            def group_body(e: Emitter, g: Value, _c) -> None:
                s_all = gp.scales_at(e, g, n0, VECTOR)
                z_all = e.vload(zbuf, [g, n0], VECTOR)
                ft = vector_of(f32, per_step)
                s = [e.broadcast(e.extract(s_all, i), ft) for i in range(VECTOR)]
                z = [e.broadcast(e.extract(z_all, i), ft) for i in range(VECTOR)]

                def step_body(e: Emitter, r: Value, _c) -> None:
                    k0 = e.add(e.mul(g, gp.group_size), e.mul(r, per_step))
                    row0 = e.divui(e.mul(k0, bits), 32)
                    rows = [e.add(row0, w) for w in range(step_words)]
                    if DEQUANT_PREFETCH_STEPS:
                        ahead = e.add(row0, DEQUANT_PREFETCH_STEPS * step_words)
                        e.op(PrefetchOp(gp.qweight, [ahead, n0]))
                    for i in range(VECTOR):
                        # Scalar loads (broadcast straight from the cache
                        # line the previous column brought in).
                        words = [e.load(gp.qweight, [row, e.add(n0, i)]) for row in rows]
                        q = e.andi(_codes_vector(e, words, per_step, bits), (1 << bits) - 1)
                        v = e.mulf(s[i], e.subf(e.uitofp(q), z[i]))
                        e.vstore(v, out, [e.add(n0, i), k0], nontemporal=True)

                e.for_(0, steps, 1, step_body)

            e.for_(0, gp.groups, 1, group_body)

        e.parallel([0], [column_groups], columns_body, role("rows"))
        start = e.mul(column_groups, VECTOR)
    e.parallel(
        [0],
        [e.sub(gp.n, start)],
        lambda ie, ivs: row_body(ie, [ie.add(start, ivs[0])]),
        role("rows"),
    )
    e.op(memref.DeallocOp.get(zbuf))


def _codes_vector(e: Emitter, words: list[Value], lanes: int, bits: int) -> Value:
    """Lane j holds code j of the stream `words` (its bits b*j.., not yet masked).

    Each word is broadcast and blended into the lanes it feeds, so one
    shift (and the caller's mask) extracts every code at once. A code that
    straddles two words (3-bit codes 10 and 21 of a run) also gets the low
    bits of the next word, shifted up.
    """
    vt = vector_of(i32, lanes)
    word_of = [bits * j // 32 for j in range(lanes)]
    shift = [bits * j % 32 for j in range(lanes)]
    straddles = [shift[j] + bits > 32 for j in range(lanes)]
    low = e.shrui(_blend_words(e, words, word_of, vt), e.vconst(shift, i32))
    if not any(straddles):
        return low
    # Lanes that do not straddle read word 0 here and shift it by 0 bits:
    # masked away below, and no shift ever reaches the word width.
    nxt = [word_of[j] + 1 if straddles[j] else -1 for j in range(lanes)]
    up = [32 - shift[j] if straddles[j] else 0 for j in range(lanes)]
    keep = e.vconst([-1 if s else 0 for s in straddles], i32)
    high = e.andi(e.shli(_blend_words(e, words, nxt, vt), e.vconst(up, i32)), keep)
    return e.ori(low, high)


def _blend_words(e: Emitter, words: list[Value], word_of: list[int], vt) -> Value:
    """A vector whose lane j is words[word_of[j]] (word 0 where word_of[j] < 0)."""
    lanes = len(word_of)
    vec = e.broadcast(words[0], vt)
    for w in range(1, len(words)):
        if w not in word_of:
            continue
        mask = [lanes + j if word_of[j] == w else j for j in range(lanes)]
        vec = e.shuffle(vec, e.broadcast(words[w], vt), mask)
    return vec


def lower_qmatmul(
    e: Emitter,
    config: GPTQConfigAttr,
    x: Value,
    packed: Sequence[Value],
    y: Value,
    vectorize: bool,
    m_tile: int,
    chunk: int = CHUNK,
    int8: bool = False,
) -> None:
    """y[m, n] = sum_k x[m, k] * w[k, n] for x [M, K] and a GPTQ weight (logical [N, K]).

    Vectorized code streams `chunk` adjacent columns at a time (a multiple of
    16); the columns past the last whole chunk go 16 at a time, then singly.
    With `int8` (and `vectorize`), weights that `gptq_int8` covers multiply
    x quantized to int8 blocks with integer dot products (`gptq_int8`).
    """
    xt = x.type
    assert isinstance(xt, MemRefType)
    k = xt.get_shape()[1]
    gp = _Gptq(e, config, packed, k)
    if not vectorize and gp.fast:
        gptq_scalar.lower_qmatmul(e, gp, x, y)
        return
    zbuf = gp.zeros_as_float(e)
    ix = gptq_int8.Int8X(e, gp, x) if vectorize and int8 and gptq_int8.int8_applies(gp) else None
    xsum = lower_subblock_sums(e, x, gp.group_size, vectorize) if gp.fast and not ix else None
    m = e.dim(x, 0)
    lanes = VECTOR if vectorize else 1

    def m_tiles(e: Emitter, tile) -> None:
        """tile(e, m0, t) over the rows of x: tiles of m_tile, then single rows."""
        m_full = e.sub(m, e.remui(m, m_tile)) if m_tile > 1 else e.index(0)
        if m_tile > 1:
            e.for_(0, m_full, m_tile, lambda ie, m0, _c: tile(ie, m0, m_tile))
        e.for_(m_full, m, 1, lambda ie, m0, _c: tile(ie, m0, 1))

    def columns(e: Emitter, col: Value, v: int) -> None:
        """All rows of y for columns col .. col+v-1."""
        acc_t = vector_of(f32, v)

        def tile(e: Emitter, m0: Value, t: int) -> None:
            zeros = [e.const(0.0, acc_t) for _ in range(t)]
            if ix is not None:
                accs = gptq_int8.fast_groups(e, gp, ix, zbuf, col, v, m0, t, zeros)
            elif gp.fast:
                accs = _fast_groups(e, gp, x, xsum, zbuf, col, v, m0, t, zeros)
            else:
                accs = _general_k(e, gp, x, zbuf, col, v, m0, t, zeros)
            for i in range(t):
                e.vstore(accs[i], y, [e.add(m0, i), col])

        m_tiles(e, tile)

    start: Value = e.index(0)
    if vectorize and gp.fast:
        if chunk % VECTOR or chunk <= 0:
            raise ValueError(f"the GPTQ column chunk must be a positive multiple of {VECTOR}")
        chunks = e.divui(gp.n, chunk)

        def chunk_body(ie: Emitter, ivs: Sequence[Value]) -> None:
            c0 = ie.mul(ivs[0], chunk)
            if ix is not None:
                m_tiles(
                    ie,
                    lambda je, m0, t: gptq_int8.fast_chunk(je, gp, ix, zbuf, y, c0, chunk, m0, t),
                )
            else:
                m_tiles(
                    ie, lambda je, m0, t: _fast_chunk(je, gp, x, xsum, zbuf, y, c0, chunk, m0, t)
                )

        e.parallel([0], [chunks], chunk_body, role("rows"))
        start = e.mul(chunks, chunk)
    # Columns past the last whole chunk: vectors of `lanes`, then one at a time.
    # Scalar code (the GPU's) gives each column a warp: its groups (or, with
    # act-order, its k) are split across the 32 threads and summed with a warp
    # reduction, so that M = 1 still fills the GPU (split-K).
    tiles = e.divui(e.sub(gp.n, start), lanes)
    e.parallel(
        [0],
        [tiles],
        lambda ie, ivs: columns(ie, ie.add(start, ie.mul(ivs[0], lanes)), lanes),
        role("rows") if vectorize else role("rows", "warp"),
    )
    if lanes > 1:
        tail_start = e.add(start, e.mul(tiles, lanes))
        tail = e.sub(gp.n, tail_start)
        e.parallel(
            [0], [tail], lambda ie, ivs: columns(ie, ie.add(tail_start, ivs[0]), 1), role("rows")
        )
    if xsum is not None:
        e.op(memref.DeallocOp.get(xsum))
    if ix is not None:
        ix.dealloc(e)
    e.op(memref.DeallocOp.get(zbuf))


def _fast_groups(e, gp: _Gptq, x, xsum, zbuf, col, v, m0, t, init) -> list[Value]:
    acc_t = vector_of(f32, v)
    runs = gp.group_size // gp.run_codes

    def group_body(e: Emitter, g: Value, accs: Sequence[Value]) -> list[Value]:
        s = gp.scales_at(e, g, col, v)
        z = e.vload(zbuf, [g, col], v)

        # Several partial sums per row break the FMA dependency chain.
        parts = min(PARTIAL_SUMS, gp.run_codes)

        def run_body(e: Emitter, r: Value, carried: Sequence[Value]) -> list[Value]:
            gaccs = list(carried)
            run = e.add(e.mul(g, runs), r)
            row0 = e.mul(run, gp.run_words)
            k0 = e.mul(run, gp.run_codes)
            words = [e.vload(gp.qweight, [e.add(row0, w), col], v) for w in range(gp.run_words)]
            for j in range(gp.run_codes):
                q = e.uitofp(code_in_run(e, words, j, gp.bits))
                kk = e.add(k0, j)
                for i in range(t):
                    xv = e.broadcast(e.load(x, [e.add(m0, i), kk]), acc_t)
                    slot = i * parts + j % parts
                    gaccs[slot] = e.fma(q, xv, gaccs[slot])
            return gaccs

        zeros = [e.const(0.0, acc_t) for _ in range(t * parts)]
        partials = e.for_(0, runs, 1, run_body, zeros, role("reduction"))
        gaccs = []
        for i in range(t):
            total = partials[i * parts]
            for p in range(1, parts):
                total = e.addf(total, partials[i * parts + p], True)
            gaccs.append(total)
        out = []
        for i in range(t):
            xs = e.broadcast(e.load(xsum, [e.add(m0, i), g]), acc_t)
            corrected = e.subf(gaccs[i], e.mulf(z, xs, True), True)
            out.append(e.fma(s, corrected, accs[i]))
        return out

    return list(e.for_(0, gp.groups, 1, group_body, init, role("reduction")))


def _fast_chunk(e: Emitter, gp: _Gptq, x, xsum, zbuf, y, c0, chunk: int, m0, t: int) -> None:
    """The float kernel's chunk: codes converted to float, FMAs with broadcast x."""
    v = VECTOR
    vt = vector_of(f32, v)
    runs = gp.group_size // gp.run_codes

    def accumulate_group(e: Emitter, g: Value, gacc: Value, subs: int) -> None:
        def run_body(e: Emitter, r: Value, _c) -> None:
            run = e.add(e.mul(g, runs), r)
            row0 = e.mul(run, gp.run_words)
            k0 = e.mul(run, gp.run_codes)
            xs = [
                [
                    e.broadcast(e.load(x, [e.add(m0, i), e.add(k0, j)]), vt)
                    for j in range(gp.run_codes)
                ]
                for i in range(t)
            ]

            def column_body(e: Emitter, c: Value, _c) -> None:
                col = e.add(c0, e.mul(c, v))
                # The same columns PREFETCH_ROWS rows down (past the last row
                # this reads other memory harmlessly: a prefetch never faults).
                e.op(PrefetchOp(gp.qweight, [e.add(row0, PREFETCH_ROWS), col]))
                words = [e.vload(gp.qweight, [e.add(row0, w), col], v) for w in range(gp.run_words)]
                partial = [e.const(0.0, vt) for _ in range(t)]
                for j in range(gp.run_codes):
                    q = e.uitofp(code_in_run(e, words, j, gp.bits))
                    for i in range(t):
                        partial[i] = e.fma(q, xs[i][j], partial[i])
                for i in range(t):
                    at = [e.index(i), e.mul(c, v)]
                    e.vstore(e.addf(e.vload(gacc, at, v), partial[i], True), gacc, at)

            e.for_(0, subs, 1, column_body)

        e.for_(0, runs, 1, run_body)

    stream_chunk(e, gp, zbuf, xsum, y, c0, chunk, m0, t, accumulate_group)


def _general_k(e, gp: _Gptq, x, zbuf, col, v, m0, t, init) -> list[Value]:
    acc_t = vector_of(f32, v)

    def k_body(e: Emitter, kk: Value, accs: Sequence[Value]) -> list[Value]:
        g = gp.group_of(e, kk)
        q = e.uitofp(gp.code(e, kk, col, v))
        w = e.mulf(gp.scales_at(e, g, col, v), e.subf(q, e.vload(zbuf, [g, col], v)), True)
        out = []
        for i in range(t):
            xv = e.broadcast(e.load(x, [e.add(m0, i), kk]), acc_t)
            out.append(e.fma(w, xv, accs[i]))
        return out

    return list(e.for_(0, gp.k, 1, k_body, init, role("reduction")))
