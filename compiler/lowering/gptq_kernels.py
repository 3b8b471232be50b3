"""Loop nests for GPTQ dequantize and qmatmul.

GPTQ packs along K within each column, so qmatmul vectorizes across columns:
a vector of V adjacent columns loads V consecutive words of a qweight row
(contiguous), unpacks the same code of each, and accumulates
`x[m, k] * q[k, n0:n0+V]`. When groups are contiguous runs of whole words
(no desc_act, group_size a multiple of the run length), the zero point
leaves the inner loop:

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

from quantir.compiler.encodings.gptq import code_at, code_in_run, run_shape
from quantir.compiler.lowering.emitter import Emitter, Value, vector_of
from quantir.compiler.lowering.gguf_kernels import _role, lower_subblock_sums
from quantir.dialects.quant import GPTQConfigAttr

COLUMNS = 16
"""Default number of adjacent columns a vectorized qmatmul handles together."""
PARTIAL_SUMS = 4


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
        self.run_codes, self.run_words = run_shape(self.bits)
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

    def zeros_as_float(self, e: Emitter) -> Value:
        """zf[g, n] = stored zero + offset, as f32, in a new [G, N] buffer."""
        zbuf = e.v(memref.AllocOp([self.n], [], MemRefType(f32, [self.groups, DYNAMIC_INDEX])))
        bits = self.bits

        def body(e: Emitter, ivs: Sequence[Value]) -> None:
            g, n = ivs
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
            e.store(e.sitofp(z, f32), zbuf, [g, n])

        e.parallel([0, 0], [self.groups, self.n], body, _role("rows"))
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
    zbuf = gp.zeros_as_float(e)
    bits = gp.bits

    def row_body(e: Emitter, ivs: Sequence[Value]) -> None:
        (n,) = ivs
        if gp.fast:

            def group_body(e: Emitter, g: Value, _c) -> None:
                s = gp.scales_at(e, g, n, 1)
                z = e.load(zbuf, [g, n])
                runs = gp.group_size // gp.run_codes

                def run_body(e: Emitter, r: Value, _c) -> None:
                    run = e.add(e.mul(g, runs), r)
                    row0 = e.mul(run, gp.run_words)
                    k0 = e.mul(run, gp.run_codes)
                    words = [e.load(gp.qweight, [e.add(row0, w), n]) for w in range(gp.run_words)]
                    if vectorize and 32 % bits == 0:
                        lanes = gp.run_codes
                        vt = vector_of(i32, lanes)
                        shifts = e.vconst([bits * j for j in range(lanes)], i32)
                        q = e.andi(e.shrui(e.broadcast(words[0], vt), shifts), (1 << bits) - 1)
                        ft = vector_of(f32, lanes)
                        v = e.mulf(e.broadcast(s, ft), e.subf(e.uitofp(q), e.broadcast(z, ft)))
                        e.vstore(v, out, [n, k0], nontemporal=True)
                        return
                    for j in range(gp.run_codes):
                        q = e.uitofp(code_in_run(e, words, j, bits))
                        e.store(e.mulf(s, e.subf(q, z)), out, [n, e.add(k0, j)])

                e.for_(0, runs, 1, run_body)

            e.for_(0, gp.groups, 1, group_body)
            return

        def k_body(e: Emitter, kk: Value, _c) -> None:
            g = gp.group_of(e, kk)
            q = e.uitofp(gp.code(e, kk, n, 1))
            s = gp.scales_at(e, g, n, 1)
            e.store(e.mulf(s, e.subf(q, e.load(zbuf, [g, n]))), out, [n, kk])

        e.for_(0, k, 1, k_body)

    e.parallel([0], [gp.n], row_body, _role("rows"))
    e.op(memref.DeallocOp.get(zbuf))


def lower_qmatmul(
    e: Emitter,
    config: GPTQConfigAttr,
    x: Value,
    packed: Sequence[Value],
    y: Value,
    vectorize: bool,
    m_tile: int,
    columns: int = COLUMNS,
) -> None:
    """y[m, n] = sum_k x[m, k] * w[k, n] for x [M, K] and a GPTQ weight (logical [N, K]).

    `columns` adjacent columns share each vector of qweight words (vectorized code).
    """
    xt = x.type
    assert isinstance(xt, MemRefType)
    k = xt.get_shape()[1]
    gp = _Gptq(e, config, packed, k)
    zbuf = gp.zeros_as_float(e)
    xsum = lower_subblock_sums(e, x, gp.group_size, vectorize) if gp.fast else None
    m = e.dim(x, 0)
    lanes = columns if vectorize else 1

    def columns(e: Emitter, col: Value, v: int) -> None:
        """All rows of y for columns col .. col+v-1."""
        acc_t = vector_of(f32, v)

        def tile(e: Emitter, m0: Value, t: int) -> None:
            zeros = [e.const(0.0, acc_t) for _ in range(t)]
            if gp.fast:
                accs = _fast_groups(e, gp, x, xsum, zbuf, col, v, m0, t, zeros)
            else:
                accs = _general_k(e, gp, x, zbuf, col, v, m0, t, zeros)
            for i in range(t):
                e.vstore(accs[i], y, [e.add(m0, i), col])

        m_full = e.sub(m, e.remui(m, m_tile)) if m_tile > 1 else e.index(0)
        if m_tile > 1:
            e.for_(0, m_full, m_tile, lambda ie, m0, _c: tile(ie, m0, m_tile))
        e.for_(m_full, m, 1, lambda ie, m0, _c: tile(ie, m0, 1))

    full_tiles = e.divui(gp.n, lanes)
    e.parallel(
        [0], [full_tiles], lambda ie, ivs: columns(ie, ie.mul(ivs[0], lanes), lanes), _role("rows")
    )
    if lanes > 1:
        # Columns past the last whole vector, one at a time.
        tail = e.sub(gp.n, e.mul(full_tiles, lanes))
        start = e.mul(full_tiles, lanes)
        e.parallel(
            [0], [tail], lambda ie, ivs: columns(ie, ie.add(start, ivs[0]), 1), _role("rows")
        )
    if xsum is not None:
        e.op(memref.DeallocOp.get(xsum))
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
        partials = e.for_(0, runs, 1, run_body, zeros, _role("reduction"))
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

    return list(e.for_(0, gp.groups, 1, group_body, init, _role("reduction")))


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

    return list(e.for_(0, gp.k, 1, k_body, init, _role("reduction")))
