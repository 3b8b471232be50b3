"""GPTQ dequantize and qmatmul for the scalar pipelines (the GPU's lowering).

qweight [K*b/32, N] packs K along the words of one column, so consecutive
columns are consecutive words of a row: consecutive GPU threads take
consecutive columns (coalesced loads) and each walks K. Both nests are
parallel loops of one thread per item (`qrt.gpu_mapping` "item"), the
column innermost. Only for weights whose groups are whole runs of words
(no act-order); the others keep the general nests of `gptq_kernels`.

Codes become floats without a conversion instruction: `(q | 0x4B000000)`
read as f32 is 2^23 + q, and so is the zero point's, so their difference is
q - z exactly (as `uitofp(q) - sitofp(z)` is: both are small integers).

- dequantize: one thread per (run of codes, column): it reads the run's
  words of its column and writes the run's values (bit-identical to the
  vectorized CPU path: `s * (q - z)` in f32), with 16-byte stores.
- qmatmul: split-K. Thread (s, m, tile, lane) accumulates
  `s_g * sum_k (q_k - z_g) x_k` over the groups of split s for row m of x and
  COLUMNS columns tile*32*COLUMNS + lane + 32*i (each load a coalesced row
  segment of a warp; x, read with 16-byte loads, serves all of them). The
  host picks the number of splits so that about TARGET_THREADS threads run
  (an M = 1 product with few columns still fills the GPU); a second nest sums
  the splits' partial results [S, M, N] into y.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from xdsl.dialects import arith, memref, vector
from xdsl.dialects.builtin import DYNAMIC_INDEX, MemRefType, f32

from quantir.compiler.encodings.gptq import code_in_run
from quantir.compiler.lowering.emitter import Emitter, Value, vector_of
from quantir.compiler.lowering.loop_roles import role

if TYPE_CHECKING:
    from quantir.compiler.lowering.gptq_kernels import _Gptq

MAGIC = 0x4B000000
"""The f32 bits of 2^23: (MAGIC | q) read as f32 is 2^23 + q for q < 2^23."""

COLUMNS = 4
"""Columns per qmatmul thread (32 apart: each is a coalesced warp load)."""

WARP = 32

TARGET_THREADS = 1 << 18
"""About how many qmatmul threads the split-K aims for (a full H100/H200 is
132 SMs x 2048 threads)."""

UNROLL_WORDS = 4
"""qweight words per column each qmatmul loop iteration loads (in flight together)."""


def _as_magic(e: Emitter, code: Value) -> Value:
    """2^23 + code as f32 (code an i32 below 2^23)."""
    return e.bitcast(e.ori(code, MAGIC), f32)


def _max1(e: Emitter, v: Value) -> Value:
    return e.v(arith.MaxUIOp(v, e.index(1)))


def lower_dequantize(e: Emitter, gp: _Gptq, out: Value) -> None:
    """out[n, k] = scales[g, n] * (q[k, n] - z[g, n]), one thread per (run, column)."""
    bits, run_codes, run_words = gp.bits, gp.run_codes, gp.run_words
    runs = gp.k // run_codes

    def body(e: Emitter, ivs: Sequence[Value]) -> None:
        run, n = ivs
        k0 = e.mul(run, run_codes)
        g = e.divui(k0, gp.group_size)
        s = e.extf(e.load(gp.scales, [g, n]), f32)
        z = _as_magic(e, gp.zero_code(e, g, n))
        row0 = e.mul(run, run_words)
        words = [e.load(gp.qweight, [e.add(row0, w), n]) for w in range(run_words)]
        values = [
            e.mulf(s, e.subf(_as_magic(e, code_in_run(e, words, j, bits)), z))
            for j in range(run_codes)
        ]
        # Four values per 16-byte store: k0 is a multiple of 4 and rows of out
        # are K*4 bytes, so every store is 16-byte aligned on the GPU.
        vt = vector_of(f32, 4)
        for j0 in range(0, run_codes, 4):
            v = e.broadcast(values[j0], vt)
            for j in range(1, 4):
                v = e.v(vector.InsertOp(values[j0 + j], v, [j]))
            e.vstore(v, out, [n, e.add(k0, j0)], align=16)

    e.parallel([0, 0], [runs, gp.n], body, role("rows"))


def lower_qmatmul(e: Emitter, gp: _Gptq, x: Value, y: Value) -> None:
    """y[m, n] = sum_k x[m, k] * w[k, n], split-K over groups, then the splits summed."""
    bits, run_codes, run_words = gp.bits, gp.run_codes, gp.run_words
    groups = gp.groups
    runs = gp.group_size // run_codes
    unroll = 1
    while unroll * 2 * run_words <= UNROLL_WORDS and runs % (unroll * 2) == 0:
        unroll *= 2
    m = e.dim(x, 0)
    n = gp.n
    span = WARP * COLUMNS
    tiles = e.divui(e.add(n, span - 1), span)
    per_split = _max1(e, e.mul(e.mul(m, tiles), WARP))
    wanted = e.divui(e.add(per_split, TARGET_THREADS - 1), per_split)
    splits = e.minui(_max1(e, wanted), groups)
    per = e.divui(e.add(splits, groups - 1), splits)  # groups per split
    splits = e.divui(e.add(per, groups - 1), per)  # no empty split
    pt = MemRefType(f32, [DYNAMIC_INDEX, DYNAMIC_INDEX, DYNAMIC_INDEX])
    partial = e.v(memref.AllocOp([splits, m, n], [], pt))
    last_col = e.sub(n, 1)
    xt = x.type
    assert isinstance(xt, MemRefType)
    x_vec = min(run_codes, 4)

    def body(e: Emitter, ivs: Sequence[Value]) -> None:
        s, row, tile, lane = ivs
        first = e.add(e.mul(tile, span), lane)
        cols_raw = [e.add(first, i * WARP) for i in range(COLUMNS)]
        # Past the last column, read the last one again (stores are guarded).
        cols = [e.minui(c, last_col) for c in cols_raw]
        g0 = e.mul(s, per)
        g1 = e.minui(e.add(g0, per), groups)

        def group_body(e: Emitter, g: Value, accs: Sequence[Value]) -> list[Value]:
            scale = [e.extf(e.load(gp.scales, [g, c]), f32) for c in cols]
            zero = [_as_magic(e, gp.zero_code(e, g, c)) for c in cols]

            def run_body(e: Emitter, r: Value, part: Sequence[Value]) -> list[Value]:
                part = list(part)
                for u in range(unroll):
                    run = e.add(e.mul(g, runs), e.add(r, u))
                    row0 = e.mul(run, run_words)
                    k0 = e.mul(run, run_codes)
                    xs: list[Value] = []
                    for j0 in range(0, run_codes, x_vec):
                        # k0 is a multiple of run_codes: 16-byte aligned x loads.
                        xv = e.vload(x, [row, e.add(k0, j0)], x_vec, align=4 * x_vec)
                        if x_vec > 1:
                            xs.extend(e.extract(xv, j) for j in range(x_vec))
                        else:
                            xs.append(xv)
                    for i, c in enumerate(cols):
                        words = [e.load(gp.qweight, [e.add(row0, w), c]) for w in range(run_words)]
                        for j in range(run_codes):
                            q = e.subf(_as_magic(e, code_in_run(e, words, j, bits)), zero[i], True)
                            part[i] = e.fma(q, xs[j], part[i])
                return part

            zeros = [e.f32_const(0.0) for _ in cols]
            sums = e.for_(0, runs, unroll, run_body, zeros, role("reduction"))
            return [e.fma(scale[i], sums[i], accs[i]) for i in range(len(cols))]

        init = [e.f32_const(0.0) for _ in cols]
        totals = e.for_(g0, g1, 1, group_body, init, role("reduction"))
        for c_raw, total in zip(cols_raw, totals):
            with e.if_(e.cmpi("ult", c_raw, n)) as inner:
                inner.store(total, partial, [s, row, c_raw])

    e.parallel([0, 0, 0, 0], [splits, m, tiles, WARP], body, role("rows"))

    def sum_body(e: Emitter, ivs: Sequence[Value]) -> None:
        row, col = ivs
        (total,) = e.for_(
            0,
            splits,
            1,
            lambda ie, sp, c: [ie.addf(c[0], ie.load(partial, [sp, row, col]), True)],
            [e.f32_const(0.0)],
            role("reduction"),
        )
        e.store(total, y, [row, col])

    e.parallel([0, 0], [m, n], sum_body, role("rows"))
    e.op(memref.DeallocOp.get(partial))
