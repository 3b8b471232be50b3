"""Instruction selection for `qrt.dot_u8i8` (unsigned x signed byte dot products).

The op's meaning is exact: `acc[i] + sum_{j<4} zext(codes[4i+j]) * sext(values[4i+j])`.
Which instructions compute it depends on the host, so the choice is made
here, from the target's CPU features (which are part of the kernel cache
key, so code built for one host is never loaded on another):

- AVX-512 VNNI (64 bytes), AVX-512 VNNI + VL or AVX-VNNI (16 or 32 bytes):
  one `vpdpbusd`.
- AVX2 / SSSE3 when the codes have at most 7 bits: `vpmaddubsw` (pairs of
  products into 16-bit lanes: with codes below 128 and values in [-128, 127]
  a pair is at most 2 * 127 * 128 = 32512, so it never saturates), then
  `vpmaddwd` by ones (pairs of 16-bit lanes into 32-bit lanes).
- Otherwise (8-bit codes without VNNI, other CPUs, GPUs): widening
  multiplies and adds that LLVM vectorizes for whatever the target has.

`qrt.dot_u8i8_scaled` (each lane's dot times a 16-bit scale, codes of at
most 7 bits) is `vpmaddubsw` then `vpdpwssd` (VNNI) or `vpmaddwd` + `vpaddd`
(AVX2): see `emit_scaled_dot_u8i8`.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)

Intrinsic = Callable[[str, ir.Type, list[ir.Type]], ir.Function]
"""(full intrinsic name, return type, argument types) -> its declaration."""


def dot_strategy(nbytes: int, code_bits: int, features: frozenset[str]) -> str:
    """Which instruction sequence computes a dot of `nbytes` bytes on this host."""
    if nbytes == 64 and "avx512vnni" in features:
        return "vnni"
    if nbytes in (16, 32) and ({"avx512vnni", "avx512vl"} <= features or "avxvnni" in features):
        return "vnni"
    if code_bits <= 7 and (
        (nbytes == 32 and "avx2" in features) or (nbytes == 16 and "ssse3" in features)
    ):
        return "maddubs"
    return "widen"


def native_split(nbytes: int, code_bits: int, features: frozenset[str]) -> bool:
    """Whether a dot wider than the host's dot instructions runs as two halves.

    A 64-byte dot without AVX-512 VNNI runs as two 32-byte dots (VNNI-256
    or AVX2) rather than falling back to widening arithmetic.
    """
    return (
        nbytes == 64
        and dot_strategy(64, code_bits, features) == "widen"
        and dot_strategy(32, code_bits, features) != "widen"
    )


def emit_dot_u8i8(
    b: ir.IRBuilder,
    intrinsic: Intrinsic,
    acc: ir.Value,
    codes: ir.Value,
    values: ir.Value,
    code_bits: int,
    features: frozenset[str],
) -> ir.Value:
    nbytes = codes.type.count
    lanes = nbytes // 4
    acc_t = acc.type
    bytes_t = ir.VectorType(I8, nbytes)
    if native_split(nbytes, code_bits, features):
        return _in_halves(
            b,
            acc,
            (codes, values),
            (),
            lambda a, bs, _: emit_dot_u8i8(b, intrinsic, a, *bs, code_bits, features),
        )
    strategy = dot_strategy(nbytes, code_bits, features)
    if strategy == "vnni":
        fn = intrinsic(f"llvm.x86.avx512.vpdpbusd.{nbytes * 8}", acc_t, [acc_t, bytes_t, bytes_t])
        return b.call(fn, [acc, codes, values])
    if strategy == "maddubs":
        pairs_t = ir.VectorType(I16, nbytes // 2)
        if nbytes == 32:
            maddubs, maddwd = "llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd"
        else:
            maddubs, maddwd = "llvm.x86.ssse3.pmadd.ub.sw.128", "llvm.x86.sse2.pmadd.wd"
        pairs = b.call(intrinsic(maddubs, pairs_t, [bytes_t, bytes_t]), [codes, values])
        ones = ir.Constant(pairs_t, [ir.Constant(I16, 1)] * (nbytes // 2))
        quads = b.call(intrinsic(maddwd, acc_t, [pairs_t, pairs_t]), [pairs, ones])
        return b.add(acc, quads)
    wide_t = ir.VectorType(I32, nbytes)
    products = b.mul(b.zext(codes, wide_t), b.sext(values, wide_t))
    total = acc
    for j in range(4):
        mask = ir.Constant(
            ir.VectorType(I32, lanes), [ir.Constant(I32, 4 * i + j) for i in range(lanes)]
        )
        total = b.add(total, b.shuffle_vector(products, products, mask))
    return total


_SCALED_NAMES = {
    # bytes: (vpmaddubsw, vpmaddwd, vpdpwssd width)
    64: ("llvm.x86.avx512.pmaddubs.w.512", "llvm.x86.avx512.pmaddw.d.512", "512"),
    32: ("llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd", "256"),
    16: ("llvm.x86.ssse3.pmadd.ub.sw.128", "llvm.x86.sse2.pmadd.wd", "128"),
}


def scaled_strategy(nbytes: int, features: frozenset[str]) -> str:
    """How a `qrt.dot_u8i8_scaled` of `nbytes` bytes runs here: "vnni"
    (`vpmaddubsw` + `vpdpwssd`), "madd" (`vpmaddubsw` + `vpmaddwd` + `vpaddd`),
    "split" (two halves of 32 bytes) or "widen" (plain arithmetic)."""
    vnni = {"avx512vnni", "avx512vl"} <= features or "avxvnni" in features
    if nbytes == 64:
        if {"avx512bw", "avx512vnni"} <= features:
            return "vnni"
        if "avx512bw" in features:
            return "madd"
        return "split" if "avx2" in features else "widen"
    if (nbytes == 32 and "avx2" in features) or (nbytes == 16 and "ssse3" in features):
        return "vnni" if vnni else "madd"
    return "widen"


def _in_halves(
    b: ir.IRBuilder,
    acc: ir.Value,
    byte_vectors: tuple[ir.Value, ...],
    lane_vectors: tuple[ir.Value, ...],
    dot: Callable[[ir.Value, list[ir.Value], list[ir.Value]], ir.Value],
) -> ir.Value:
    """A dot too wide for the host as two dots of half the lanes, joined: `dot`
    gets each half of `acc`, of the byte vectors and of the per-lane vectors."""
    lanes = acc.type.count
    halves = []
    for h in range(2):
        byte_mask = _indices(range(h * 2 * lanes, (h + 1) * 2 * lanes))
        lane_mask = _indices(range(h * lanes // 2, (h + 1) * lanes // 2))
        halves.append(
            dot(
                b.shuffle_vector(acc, acc, lane_mask),
                [b.shuffle_vector(v, v, byte_mask) for v in byte_vectors],
                [b.shuffle_vector(v, v, lane_mask) for v in lane_vectors],
            )
        )
    return b.shuffle_vector(halves[0], halves[1], _indices(range(lanes)))


def emit_scaled_dot_u8i8(
    b: ir.IRBuilder,
    intrinsic: Intrinsic,
    acc: ir.Value,
    codes: ir.Value,
    values: ir.Value,
    scales: ir.Value,
    features: frozenset[str],
) -> ir.Value:
    """acc[i] + sext(scales[i]) * (4-byte dot of lane i), codes of at most 7 bits.

    `vpmaddubsw` sums the products in pairs into 16-bit lanes (no saturation
    below 128 x 128); each pair is then multiplied by its lane's scale and the
    two pairs of a lane added into 32 bits by `vpmaddwd` / `vpdpwssd`, which
    reads the scale twice per lane (a shuffle duplicates each one):
    s * p0 + s * p1 = s * (p0 + p1), at most 2 * 2^15 * 32512 < 2^31.
    """
    nbytes = codes.type.count
    lanes = nbytes // 4
    strategy = scaled_strategy(nbytes, features)
    if strategy == "split":
        return _in_halves(
            b,
            acc,
            (codes, values),
            (scales,),
            lambda a, bs, ls: emit_scaled_dot_u8i8(b, intrinsic, a, *bs, *ls, features),
        )
    if strategy == "widen":
        wide_t = ir.VectorType(I32, lanes)
        zero = ir.Constant(wide_t, [ir.Constant(I32, 0)] * lanes)
        dot = emit_dot_u8i8(b, intrinsic, zero, codes, values, 8, features)
        return b.add(acc, b.mul(dot, b.sext(scales, wide_t)))
    maddubs, maddwd, width = _SCALED_NAMES[nbytes]
    bytes_t = ir.VectorType(I8, nbytes)
    pairs_t = ir.VectorType(I16, nbytes // 2)
    pairs = b.call(intrinsic(maddubs, pairs_t, [bytes_t, bytes_t]), [codes, values])
    doubled = b.shuffle_vector(scales, scales, _indices(i // 2 for i in range(2 * lanes)))
    acc_t = acc.type
    if strategy == "vnni":
        fn = intrinsic(f"llvm.x86.avx512.vpdpwssd.{width}", acc_t, [acc_t, pairs_t, pairs_t])
        return b.call(fn, [acc, pairs, doubled])
    quads = b.call(intrinsic(maddwd, acc_t, [pairs_t, pairs_t]), [pairs, doubled])
    return b.add(acc, quads)


def parse_features(flat: str) -> frozenset[str]:
    """LLVM's '+avx2,-avx512f,...' feature string as the set of enabled names."""
    return frozenset(f[1:] for f in flat.split(",") if f.startswith("+"))


def _indices(values) -> ir.Constant:
    items = [ir.Constant(I32, v) for v in values]
    return ir.Constant(ir.VectorType(I32, len(items)), items)
