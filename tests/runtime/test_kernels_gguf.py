"""The compiled GGUF kernels (eager dequantize and qmatmul) against gguf-py.

Every test runs for both CPU pipelines: the default "quantir-cpu" (vector
code) and "quantir-cpu-scalar" (the GPU's scalar lowering, run on the CPU).

dequantize must be bit-identical to ``gguf.quants.dequantize`` (which is
bit-identical to ggml's C), compared as uint32 bits, for random blocks and
for special fp16 scales (zeros, subnormals, the largest fp16, infinities and
NaNs in each fp16 field separately, all-zero and all-0xFF blocks). Blocks
are random bytes whose fp16 fields are then set deliberately (docs/block-formats.md
offsets; the table LAYOUTS below).

Two NaN operands. When two fp16 fields of a block (d and dmin, or d and m)
are both NaN, an element combines two NaNs (d1*q - m1, or d*q + m). IEEE
754 (section 6.2.3) says the result carries the payload of one of the input
NaNs and leaves which one open; C does not pin it either, and ggml's C code
gets whatever its compiler emits (operand order, FMA contraction). gguf-py
itself is not consistent: for Q4_1 numpy returns m's payload, for Q4_K d's.
So for that case the test requires a quiet NaN carrying one of the two input
payloads, not gguf-py's pick. With a single NaN field (every other case)
the bits must match exactly.

qmatmul error bound
-------------------
The reference is float64: W = gguf.quants.dequantize(packed) (float32, exact
values), y_ref = x @ W.T in float64 (its own error, below K * 2**-53 relative,
is negligible next to the bound).

Each weight is affine in its integer code: w_k = a_k * q_k - b_k, with a_k,
b_k the (sub-)block's scale and offset (e.g. Q4_K: a = d*sc_j, b = dmin*m_j;
Q4_0: a = d, b = 8*d). The kernel may use any such split with b_k the value
at one code c of the code range (so b_k = -w_k(c)): it computes
sum_j a_j * sum_{k in j} q_k x_k - sum_j b_j * sum_{k in j} x_k, in float32,
with FMAs and in any association order (vector lanes, m-tiles, threads
never split one output). Let R_k = max(|w_k(q_min)|, |w_k(q_max)|), the
largest magnitude element k can take over its code range; then
|b_k| <= R_k and |a_k q_k| = |w_k(q_k) - w_k(c)| <= 2 R_k, so every term has
|a_k q_k x_k| + |b_k x_k| <= 3 R_k |x_k|.

The result is a sum of at most 2K such terms (K products a q x and K
offsets b x); along any path from a term to the result there are at most
2K - 1 additions and 3 roundings forming the term (q*x, times a, and a
itself when the kernel does not form a = d*sc like the reference: these
products are exact anyway, d being fp16 and sc at most 8 bits). By the
standard summation analysis (Higham, Accuracy and Stability, section 4.2),
for any association order

    |y - y_ref| <= gamma_{2K+2} * sum_k (|a_k q_k| + |b_k|) |x_k|
               <= gamma_{2K+2} * 3 * sum_k R_k |x_k|,

with gamma_n = n u / (1 - n u), u = 2**-24 = eps32 / 2. For the K used here
(n u < 1e-3) gamma_{2K+2} <= 1.001 (K + 1) eps32, hence the per-element test

    |y - y_ref| <= 3.1 * (K + 2) * eps32 * sum_k R_k |x_k|  (+ (2K+4) * 2**-149)

where the last term allows for float32 underflow to subnormals (each
operation then adds at most 2**-150 absolutely). R_k is computed with gguf-py
by dequantizing each block with its code bytes set to the codes' two
extremes. The bound is checked per output element, not as a global
tolerance. A worst-case bound is loose for small errors, so qmatmul is also
run on data built to make every float32 operation exact (fp16 fields +-2**e,
x small integers, partial sums well below 2**24 units): there the result
must equal the float64 reference bit for bit, whatever the order of
operations, which catches a single wrong code.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from kernel_checks import (
    EXACT_PIPELINE_NAMES,
    EXACT_PIPELINES,
    PIPELINE_NAMES,
    PIPELINES,
    assert_bits_equal,
    random_x,
)

from quantir.compiler.encodings import layout_for
from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime import api


@dataclass(frozen=True)
class Layout:
    """Where the fp16 fields and the code bytes of one block are (docs/block-formats.md)."""

    name: str
    fp16: dict[str, int]  # fp16 field -> byte offset
    codes: tuple[int, int]  # byte range holding the codes (every byte of it is code bits)
    extremes: tuple[int, int]  # code bytes giving every element its smallest / largest code

    @property
    def encoding(self) -> QuantizationEncoding:
        return QuantizationEncoding.parse(self.name)

    @property
    def epb(self) -> int:
        return self.encoding.elements_per_block

    @property
    def block_size(self) -> int:
        return self.encoding.block_size


LAYOUTS = {
    lay.name: lay
    for lay in (
        Layout("q4_0", {"d": 0}, (2, 18), (0x00, 0xFF)),  # d*(q-8)
        Layout("q4_1", {"d": 0, "m": 2}, (4, 20), (0x00, 0xFF)),  # d*q + m
        Layout("q5_0", {"d": 0}, (2, 22), (0x00, 0xFF)),  # qh@2, qs@6; d*(q-16)
        Layout("q5_1", {"d": 0, "m": 2}, (4, 24), (0x00, 0xFF)),  # qh@4, qs@8
        Layout("q8_0", {"d": 0}, (2, 34), (0x80, 0x7F)),  # int8 codes -128 .. 127
        Layout("q2_k", {"d": 80, "dmin": 82}, (16, 80), (0x00, 0xFF)),  # scales@0, qs@16
        Layout("q3_k", {"d": 108}, (0, 96), (0x00, 0xFF)),  # hmask@0, qs@32, scales@96
        Layout("q4_k", {"d": 0, "dmin": 2}, (16, 144), (0x00, 0xFF)),  # scales@4, qs@16
        Layout("q5_k", {"d": 0, "dmin": 2}, (16, 176), (0x00, 0xFF)),  # qh@16, qs@48
        Layout("q6_k", {"d": 208}, (0, 192), (0x00, 0xFF)),  # ql@0, qh@128, scales@192
    )
}
ENCODINGS = list(LAYOUTS)
# x of rank 1 and 3 only changes host code (reshapes around the same kernel), so
# those tests cover a few encodings of each kind (scale only, scale and offset,
# K-quants with and without mins).
RANK_ENCODINGS = ["q4_0", "q4_1", "q4_k", "q6_k"]
TWO_FIELD_ENCODINGS = [n for n, lay in LAYOUTS.items() if len(lay.fp16) == 2]


def k_values(lay: Layout) -> tuple[int, int]:
    """(main K, a second K): 2 and 3 blocks per row for K-quants, 5 and 9 for 32-blocks."""
    return (2 * lay.epb, 3 * lay.epb) if lay.epb == 256 else (5 * lay.epb, 9 * lay.epb)


N_ROWS = 37  # not a multiple of 16, 8 or 4: every vector and thread split has a tail
DEQUANTIZE_ROWS = 301  # 602 to 2709 random blocks per encoding and K

SPECIAL_FP16 = {
    "+0": 0x0000,
    "-0": 0x8000,
    "min subnormal": 0x0001,
    "max subnormal": 0x03FF,
    "-subnormal": 0x8155,
    "min normal": 0x0400,
    "one": 0x3C00,
    "-one": 0xBC00,
    "max": 0x7BFF,
    "-max": 0xFBFF,
    "+inf": 0x7C00,
    "-inf": 0xFC00,
    "qnan": 0x7E00,
    "-qnan": 0xFE00,
    "snan payload 1": 0x7C01,
    "nan payload 0x155": 0x7D55,
    "-snan payload 0x12a": 0xFD2A,
    "all ones": 0xFFFF,
}


# -- building blocks --------------------------------------------------------------------


def typical_fp16(rng: np.random.Generator, shape) -> np.ndarray:
    """fp16 bit patterns of scale-like values: random sign, magnitude 2**-12 .. 2."""
    mag = np.exp2(rng.uniform(-12.0, 1.0, shape))
    sign = rng.choice([-1.0, 1.0], shape)
    return (sign * mag).astype(np.float16).view(np.uint16)


def any_finite_fp16(rng: np.random.Generator, shape) -> np.ndarray:
    """Uniformly random finite fp16 bit patterns (subnormals and +-65504 included)."""
    bits = rng.integers(0, 1 << 16, shape, dtype=np.uint16)
    inf_or_nan = (bits & 0x7C00) == 0x7C00
    bits[inf_or_nan] &= 0xBFFF  # clear the top exponent bit: finite, same sign
    return bits


def set_fp16(blocks: np.ndarray, offset: int, bits: np.ndarray) -> None:
    """Write fp16 bit patterns (little-endian) at `offset` of each block [..., block_size]."""
    bits = np.broadcast_to(np.asarray(bits, dtype=np.uint16), blocks.shape[:-1])
    blocks[..., offset] = (bits & 0xFF).astype(np.uint8)
    blocks[..., offset + 1] = (bits >> 8).astype(np.uint8)


def make_blocks(rng: np.random.Generator, lay: Layout, rows: int, k: int, fp16=None) -> np.ndarray:
    """Random packed rows [rows, k/epb*block_size]; fp16 fields from `fp16[field]`
    (bit patterns broadcast to [rows, blocks]) or typical_fp16."""
    nb = k // lay.epb
    blocks = rng.integers(0, 256, (rows, nb, lay.block_size), dtype=np.uint8)
    for field, offset in lay.fp16.items():
        given = None if fp16 is None else fp16.get(field)
        set_fp16(blocks, offset, typical_fp16(rng, (rows, nb)) if given is None else given)
    return blocks.reshape(rows, nb * lay.block_size)


def reference(lay: Layout, packed: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return gguf_dequantize(packed, GGMLQuantizationType[lay.name.upper()])


def range_magnitude(lay: Layout, packed: np.ndarray) -> np.ndarray:
    """R [N, K]: max |value| each element can take over its code range (module doc)."""
    rows = packed.shape[0]
    blocks = packed.reshape(rows, -1, lay.block_size)
    out = None
    for byte in lay.extremes:
        variant = blocks.copy()
        variant[..., lay.codes[0] : lay.codes[1]] = byte
        mag = np.abs(reference(lay, variant.reshape(packed.shape)).astype(np.float64))
        out = mag if out is None else np.maximum(out, mag)
    return out


@functools.cache
def _blocks_for(name: str, k: int, seed: int, rows: int = N_ROWS) -> np.ndarray:
    """Random rows: the first half with typical fp16 fields, the rest any finite ones."""
    lay = LAYOUTS[name]
    rng = np.random.default_rng(seed)
    half = rows // 2
    typical = make_blocks(rng, lay, rows - half, k)
    wide = make_blocks(
        rng,
        lay,
        half,
        k,
        {f: any_finite_fp16(rng, (half, k // lay.epb)) for f in lay.fp16},
    )
    out = np.concatenate([typical, wide])
    out.setflags(write=False)
    return out


# -- dequantize -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODINGS)
def test_compiler_layouts_put_fp16_fields_where_the_docs_do(name):
    """The lowering's own fp16 field table (also used by the GPU tests) agrees with
    docs/block-formats.md."""
    assert layout_for(LAYOUTS[name].encoding).fp16_fields == LAYOUTS[name].fp16


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("which_k", [0, 1])
def test_dequantize_random_blocks(name, pipeline, which_k):
    lay = LAYOUTS[name]
    k = k_values(lay)[which_k]
    packed = _blocks_for(name, k, 1, DEQUANTIZE_ROWS)
    y = api.dequantize(name, packed, pipeline=pipeline)
    assert y.shape == (DEQUANTIZE_ROWS, k)
    assert_bits_equal(y, reference(lay, packed), f"{name} random blocks, K={k}")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name,field", [(n, f) for n, lay in LAYOUTS.items() for f in lay.fp16])
def test_dequantize_special_scale(name, field, pipeline):
    """Each special fp16 value in one field (others finite), bit-exact incl. NaN payloads."""
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    rng = np.random.default_rng(2)
    specials = np.array(list(SPECIAL_FP16.values()), dtype=np.uint16)
    packed = make_blocks(rng, lay, len(specials), k, {field: specials[:, None]})
    y = api.dequantize(name, packed, pipeline=pipeline)
    ref = reference(lay, packed)
    for row, label in enumerate(SPECIAL_FP16):
        assert_bits_equal(y[row], ref[row], f"{name} {field} = {label}")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
def test_dequantize_all_zero_and_all_ff_blocks(name, pipeline):
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed = np.zeros((4, k // lay.epb * lay.block_size), dtype=np.uint8)
    packed[1] = 0xFF  # every fp16 field is 0xFFFF: a negative NaN
    packed[2, : lay.block_size] = 0xFF  # one all-0xFF block next to an all-zero one
    packed[3, lay.block_size :] = 0xFF
    y = api.dequantize(name, packed, pipeline=pipeline)
    assert_bits_equal(y, reference(lay, packed), f"{name} all-0x00 / all-0xFF blocks")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", TWO_FIELD_ENCODINGS)
def test_dequantize_two_nan_fields(name, pipeline):
    """Both fp16 fields NaN: a quiet NaN with one of the two payloads (module doc)."""
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    rng = np.random.default_rng(3)
    (f1, o1), (f2, o2) = lay.fp16.items()
    pairs = [(0x7E11, 0x7E22), (0x7C01, 0xFE33), (0xFD55, 0x7C02), (0x7E00, 0x7E00)]
    packed = make_blocks(
        rng,
        lay,
        len(pairs),
        k,
        {
            f1: np.array([p[0] for p in pairs], np.uint16)[:, None],
            f2: np.array([p[1] for p in pairs], np.uint16)[:, None],
        },
    )
    y = api.dequantize(name, packed, pipeline=pipeline)
    ref = reference(lay, packed)

    def quiet_f32(h: int) -> int:  # the fp16 NaN converted to float32 and quieted
        return ((h & 0x8000) << 16) | 0x7F800000 | ((h & 0x3FF) << 13) | 0x00400000

    bits = y.view(np.uint32)
    for row, (h1, h2) in enumerate(pairs):
        nan_ref = np.isnan(ref[row])
        assert np.array_equal(np.isnan(y[row]), nan_ref), f"{name} row {row}: NaN positions"
        allowed = {quiet_f32(h1), quiet_f32(h2)}
        got = {int(b) for b in bits[row][nan_ref]}
        assert got <= allowed, (
            f"{name} {f1}={h1:#06x} {f2}={h2:#06x}: NaN bits {sorted(map(hex, got))}, "
            f"expected among {sorted(map(hex, allowed))}"
        )
        assert_bits_equal(y[row][~nan_ref], ref[row][~nan_ref], f"{name} row {row} non-NaN")


# -- qmatmul ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("which_k", [0, 1])
def test_qmatmul_error_bound(name, pipeline, which_k, assert_qmatmul_close):
    lay = LAYOUTS[name]
    k = k_values(lay)[which_k]
    packed = _blocks_for(name, k, 1)
    w, r = reference(lay, packed), range_magnitude(lay, packed)
    x = random_x(np.random.default_rng(4), (64, k))
    for m in (1, 3, 64):
        y = api.qmatmul(name, x[:m], packed, pipeline=pipeline)
        assert_qmatmul_close(y, x[:m], w, r)


def _exact_case(lay: Layout, k: int, rows: int, m: int, seed: int):
    """Blocks and x for which every float32 operation of qmatmul is exact (module doc)."""
    rng = np.random.default_rng(seed)
    nb = k // lay.epb
    fp16 = {}
    for field in lay.fp16:
        exp = rng.integers(-2, 0, (rows, nb))  # +-2**-2 or +-2**-1
        sign = rng.integers(0, 2, (rows, nb)) << 15
        fp16[field] = (sign | ((exp + 15) << 10)).astype(np.uint16)
    packed = make_blocks(rng, lay, rows, k, fp16)
    x = rng.integers(-1, 2, (m, k)).astype(np.float32)
    # Every value and partial sum is a multiple of 2**-2; they stay exact while
    # below 2**24 * 2**-2 in magnitude, and 3 * sum |x| R bounds every partial sum.
    worst = (np.abs(x).astype(np.float64) @ (3 * range_magnitude(lay, packed)).T).max()
    assert worst < 2.0**22, f"test data too large for exact float32 sums ({worst})"
    return packed, x


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
def test_qmatmul_exact_arithmetic(name, pipeline):
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed, x = _exact_case(lay, k, N_ROWS, 64, 5)
    w = reference(lay, packed)
    ref = x.astype(np.float64) @ w.astype(np.float64).T  # exact
    for m in (1, 3, 64):
        y = api.qmatmul(name, x[:m], packed, pipeline=pipeline)
        assert_bits_equal(y, ref[:m].astype(np.float32), f"{name} exact qmatmul M={m}")


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("name", RANK_ENCODINGS)
def test_qmatmul_x_rank_1(name, pipeline, assert_qmatmul_close):
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed = _blocks_for(name, k, 1)
    w, r = reference(lay, packed), range_magnitude(lay, packed)
    x = random_x(np.random.default_rng(6), (k,))
    y = api.qmatmul(name, x, packed, pipeline=pipeline)
    assert y.shape == (N_ROWS,)
    assert_qmatmul_close(y, x, w, r)


X3_SHAPES = [(2, 3), (1, 64), (5, 1), (0, 4)]


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("name", RANK_ENCODINGS)
def test_qmatmul_x_rank_3_dynamic_leading_dims(name, pipeline, assert_qmatmul_close):
    """One compiled kernel (leading dims dynamic) serves every leading shape."""
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed = _blocks_for(name, k, 1)
    w, r = reference(lay, packed), range_magnitude(lay, packed)
    rng = np.random.default_rng(7)
    for lead in X3_SHAPES:
        x = random_x(rng, (*lead, k))
        y = api.qmatmul(name, x, packed, pipeline=pipeline)
        assert y.shape == (*lead, N_ROWS)
        assert_qmatmul_close(y, x, w, r)


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("name", ["q4_0", "q4_k", "q6_k"])
def test_empty_operands(name, pipeline):
    """M = 0 or N = 0 give empty results (and launch nothing)."""
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed = _blocks_for(name, k, 1)
    assert api.dequantize(name, packed[:0], pipeline=pipeline).shape == (0, k)
    x = random_x(np.random.default_rng(8), (3, k))
    assert api.qmatmul(name, x[:0], packed, pipeline=pipeline).shape == (0, N_ROWS)
    assert api.qmatmul(name, x, packed[:0], pipeline=pipeline).shape == (3, 0)


# -- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
def test_thread_count_does_not_change_results(name, pipeline, monkeypatch):
    """Each output element is computed by one thread: results are bitwise identical."""
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed = _blocks_for(name, k, 1)
    x = random_x(np.random.default_rng(9), (5, k))
    deq1 = api.dequantize(name, packed, threads=1, pipeline=pipeline)
    mm1 = api.qmatmul(name, x, packed, threads=1, pipeline=pipeline)
    for threads in (2, 3):
        assert_bits_equal(
            api.dequantize(name, packed, threads=threads, pipeline=pipeline),
            deq1,
            f"{name} dequantize threads={threads}",
        )
        assert_bits_equal(
            api.qmatmul(name, x, packed, threads=threads, pipeline=pipeline),
            mm1,
            f"{name} qmatmul threads={threads}",
        )
    monkeypatch.setenv("QUANTIR_NUM_THREADS", "3")
    assert_bits_equal(api.dequantize(name, packed, pipeline=pipeline), deq1, "env threads")
    assert_bits_equal(api.qmatmul(name, x, packed, pipeline=pipeline), mm1, "env threads")


# -- background compiling (tests/runtime/conftest.py) ----------------------------------------


def warm_cases():
    """Compile calls for every kernel the tests above use, in test order."""
    cases = []
    for op, pipelines in (("dequantize", PIPELINE_NAMES), ("qmatmul", EXACT_PIPELINE_NAMES)):
        for which, name, pipeline in itertools.product((0, 1), ENCODINGS, pipelines):
            cases.append(functools.partial(_warm, op, name, which, pipeline))
    for rank, name, pipeline in itertools.product((1, 3), RANK_ENCODINGS, EXACT_PIPELINE_NAMES):
        cases.append(functools.partial(_warm, "qmatmul", name, 0, pipeline, rank))
    return cases


def _warm(op: str, name: str, which_k: int, pipeline, rank: int = 2) -> None:
    lay = LAYOUTS[name]
    k = k_values(lay)[which_k]
    packed = np.zeros((1, k // lay.epb * lay.block_size), dtype=np.uint8)
    if op == "dequantize":
        api.dequantize(name, packed, pipeline=pipeline)
    else:
        x = np.zeros((1,) * (rank - 1) + (k,), np.float32)
        api.qmatmul(name, x, packed, pipeline=pipeline)
