"""GPTQ qmatmul with int8 activations and integer dot products (the CPU's default path).

x is quantized once per call to int8 blocks of 32 with one f32 scale xd each
(`activation_quant`), and the stored weight codes q (unsigned, below 2^bits)
are multiplied with them by `qrt.dot_u8i8` without being converted to float.
The dots vectorize across 16 columns, as the float kernels do: one
vector<16xi32> load of a qweight row holds one word of each column, and
each 32-bit dot lane sums four codes of one column along k. For 2, 4 and 8
bits a word's codes go to bytes with one shift and one mask:

    (w >> (bits * s)) & repeat_bytes(2^bits - 1)

holds codes s, s + 8/bits, s + 16/bits, s + 24/bits of the word in its four
bytes (4 bits: 0, 2, 4, 6 for s = 0 and 1, 3, 5, 7 for s = 1). x is
quantized in that order (`x_permutation`), so four consecutive bytes of xq
are the matching activations: one 32-bit load, broadcast to every lane.
3-bit runs (32 codes in 3 words, two codes straddling words) are assembled
from their codes, four to a lane (c0 | c1 << 8 | c2 << 16 | c3 << 24).

Per activation block b of 32 k (`bits` qweight rows) the products of a
column add up exactly in int32; then one float step per block and row of x,
gacc += float(dot) * xd[m, b], and per group g (a whole number of blocks)

    y += s_g * (gacc - z_g * sum_{b in g} qsum[m, b])

where qsum[m, b] is the sum of the quantized x (xd * xq) over block b: the
zero point cancels against the same x the dots multiplied, so the error is
sum_k w_k (xd_k xq_k - x_k) plus float rounding (at most xd_k / 2 per
element of x; normwise about 1e-3 to 1e-2 against float64).

Only the "fast" GPTQ layouts take this path (no desc_act, groups of whole
activation blocks: group_size a multiple of 32, or -1 with K a multiple of
32); the others keep the float kernels (`gptq_kernels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from xdsl.dialects import memref
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, VectorType, f32, i8, i32

from quantir.compiler.encodings.gptq import code_in_run
from quantir.compiler.lowering.activation_quant import ACTIVATION_BLOCK, lower_quantize_rows
from quantir.compiler.lowering.emitter import Emitter, Value
from quantir.compiler.lowering.gptq_chunks import stream_chunk
from quantir.compiler.lowering.loop_roles import role
from quantir.dialects.qrt import PrefetchOp

if TYPE_CHECKING:
    from quantir.compiler.lowering.gptq_kernels import _Gptq

BLOCK = ACTIVATION_BLOCK
QUADS = BLOCK // 4
"""Dot lanes' worth of codes (four each) per column and activation block."""
INT8_BITS = (2, 3, 4, 8)
"""Code widths that take the integer-dot path by default."""
CHAINS = 2
"""Independent dot accumulators per row of x and block (against the dot's latency)."""
PREFETCH_BLOCKS = 1
"""How many activation blocks (of `bits` qweight rows) ahead the chunk kernel prefetches."""


def int8_applies(gp: _Gptq) -> bool:
    """Whether the integer-dot path covers this weight (see the module docstring)."""
    return gp.fast and gp.bits in INT8_BITS and gp.k % BLOCK == 0 and gp.group_size % BLOCK == 0


def x_permutation(bits: int) -> list[int]:
    """The order of a block's codes in xq: position p holds the code of element perm[p]."""
    if bits == 3 or bits == 8:
        return list(range(BLOCK))
    per_byte, per_word = 8 // bits, 32 // bits
    perm = []
    for w in range(BLOCK // per_word):
        for s in range(per_byte):
            perm.extend(w * per_word + t * per_byte + s for t in range(4))
    return perm


class Int8X:
    """x quantized for the dots: codes, block scales, and zero-point sums per group."""

    def __init__(self, e: Emitter, gp: _Gptq, x: Value):
        self.xq, self.xd, qsum = lower_quantize_rows(e, x, BLOCK, x_permutation(gp.bits))
        assert qsum is not None
        self.blocks_per_group = gp.group_size // BLOCK
        m = e.dim(x, 0)
        self.gsum = e.v(memref.AllocOp([m], [], MemRefType(f32, [DYNAMIC_INDEX, gp.groups])))
        bpg = self.blocks_per_group

        def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
            (row,) = ivs

            def group_body(e: Emitter, g: Value, _c) -> None:
                b0 = e.mul(g, bpg)
                (total,) = e.for_(
                    0,
                    bpg,
                    1,
                    lambda ie, bb, c: [ie.addf(c[0], ie.load(qsum, [row, ie.add(b0, bb)]))],
                    [e.f32_const(0.0)],
                )
                e.store(total, self.gsum, [row, g])

            e.for_(0, gp.groups, 1, group_body)

        e.parallel([0], [m], row_body, role("rows"))
        e.op(memref.DeallocOp.get(qsum))

    def dealloc(self, e: Emitter) -> None:
        for buf in (self.xq, self.xd, self.gsum):
            e.op(memref.DeallocOp.get(buf))

    def quads(self, e: Emitter, row: Value, b: Value, v: int) -> list[Value]:
        """The block's activation codes as QUADS vector<4v x i8>, each 4 bytes in every lane."""
        words = e.bitcast(e.vload(self.xq, [row, e.mul(b, BLOCK)], BLOCK), VectorType(i32, [QUADS]))
        bt = VectorType(i8, [4 * v])
        return [e.bitcast(e.shuffle(words, words, [q] * v), bt) for q in range(QUADS)]

    def scale(self, e: Emitter, row: Value, b: Value) -> Value:
        return e.load(self.xd, [row, b])


def weight_quads(e: Emitter, bits: int, words: list[Value], v: int) -> list[Value]:
    """The codes of one block of 16 (v) columns, as QUADS vector<4v x i8> in x's order.

    `words` are the block's `bits` qweight rows (vector<v x i32>)."""
    bt = VectorType(i8, [4 * v])
    if bits == 3:
        quads = []
        for q in range(QUADS):
            c = [code_in_run(e, words, 4 * q + t, bits) for t in range(4)]
            lane = c[0]
            for t in range(1, 4):
                lane = e.ori(lane, e.shli(c[t], 8 * t))
            quads.append(e.bitcast(lane, bt))
        return quads
    per_byte = 8 // bits
    mask = int.from_bytes(bytes([(1 << bits) - 1] * 4), "little")
    quads = []
    for w in words:
        for s in range(per_byte):
            u = e.shrui(w, bits * s) if s else w
            if bits < 8:
                u = e.andi(u, mask if mask < 2**31 else mask - 2**32)
            quads.append(e.bitcast(u, bt))
    return quads


def block_dot(e: Emitter, bits: int, codes: list[Value], values: list[Value], v: int) -> Value:
    """sum over the block of q * xq per column (vector<v x i32>), exact."""
    zero = e.const(0, VectorType(i32, [v]))
    chains = [zero] * CHAINS
    for q in range(QUADS):
        chains[q % CHAINS] = e.dot_u8i8(chains[q % CHAINS], codes[q], values[q], bits)
    total = chains[0]
    for c in chains[1:]:
        total = e.add(total, c)
    return total


def _load_words(e: Emitter, gp: _Gptq, row0: Value, col: Value, v: int) -> list[Value]:
    words = [e.vload(gp.qweight, [e.add(row0, w), col], v) for w in range(gp.bits)]
    if v == 1:
        words = [e.broadcast(w, VectorType(i32, [1])) for w in words]
    return words


def _as_float(e: Emitter, dot: Value, v: int) -> Value:
    """A dot's lanes as float32 (a scalar for one column)."""
    if v == 1:
        dot = e.extract(dot, 0)
    return e.sitofp(dot)


def fast_groups(
    e: Emitter, gp: _Gptq, ix: Int8X, zbuf: Value, col: Value, v: int, m0: Value, t: int, init
) -> list[Value]:
    """Accumulators of rows m0..m0+t-1 for columns col..col+v-1 (v = 16 or 1), all groups."""
    acc_t = VectorType(f32, [v]) if v > 1 else f32
    bpg = ix.blocks_per_group
    rows = [e.add(m0, i) for i in range(t)]

    def group_body(e: Emitter, g: Value, accs: Sequence[Value]) -> list[Value]:
        s = gp.scales_at(e, g, col, v)
        z = e.vload(zbuf, [g, col], v)

        def block_body(e: Emitter, bb: Value, gaccs: Sequence[Value]) -> list[Value]:
            b = e.add(e.mul(g, bpg), bb)
            codes = weight_quads(e, gp.bits, _load_words(e, gp, e.mul(b, gp.bits), col, v), v)
            out = []
            for i in range(t):
                dot = block_dot(e, gp.bits, codes, ix.quads(e, rows[i], b, v), v)
                xd = e.broadcast(ix.scale(e, rows[i], b), acc_t)
                out.append(e.fma(_as_float(e, dot, v), xd, gaccs[i]))
            return out

        zeros = [e.const(0.0, acc_t) for _ in range(t)]
        gaccs = e.for_(0, bpg, 1, block_body, zeros, role("reduction"))
        out = []
        for i in range(t):
            qs = e.broadcast(e.load(ix.gsum, [rows[i], g]), acc_t)
            corrected = e.subf(gaccs[i], e.mulf(z, qs, True), True)
            out.append(e.fma(s, corrected, accs[i]))
        return out

    return list(e.for_(0, gp.groups, 1, group_body, init, role("reduction")))


def fast_chunk(
    e: Emitter, gp: _Gptq, ix: Int8X, zbuf: Value, y: Value, c0: Value, chunk: int, m0, t: int
) -> None:
    """Rows m0..m0+t-1 of y for columns c0..c0+chunk-1, streaming qweight row by row:
    the float kernel's skeleton (`stream_chunk`) with integer dots per block of 32."""
    v = 16
    vt = VectorType(f32, [v])
    bpg = ix.blocks_per_group
    bits = gp.bits
    rows = [e.add(m0, i) for i in range(t)]

    def accumulate_group(e: Emitter, g: Value, gacc: Value, subs: int) -> None:
        def block_body(e: Emitter, bb: Value, _c) -> None:
            b = e.add(e.mul(g, bpg), bb)
            row0 = e.mul(b, bits)
            xs = [ix.quads(e, rows[i], b, v) for i in range(t)]
            xds = [e.broadcast(ix.scale(e, rows[i], b), vt) for i in range(t)]

            def column_body(e: Emitter, c: Value, _c) -> None:
                col = e.add(c0, e.mul(c, v))
                if PREFETCH_BLOCKS:
                    # The same columns of the next blocks (past the last row this
                    # reads other memory harmlessly: a prefetch never faults).
                    ahead = e.add(row0, PREFETCH_BLOCKS * bits)
                    for w in range(bits):
                        e.op(PrefetchOp(gp.qweight, [e.add(ahead, w), col]))
                codes = weight_quads(e, bits, _load_words(e, gp, row0, col, v), v)
                for i in range(t):
                    dot = block_dot(e, bits, codes, xs[i], v)
                    at = [e.index(i), e.mul(c, v)]
                    e.vstore(e.fma(e.sitofp(dot), xds[i], e.vload(gacc, at, v)), gacc, at)

            e.for_(0, subs, 1, column_body)

        e.for_(0, bpg, 1, block_body)

    stream_chunk(e, gp, zbuf, ix.gsum, y, c0, chunk, m0, t, accumulate_group)
