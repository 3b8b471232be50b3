"""qrt.dot_u8i8's (and qrt.dot_u8i8_scaled's) instruction selection: every strategy
computes the exact dot.

Each strategy is compiled for this host and run on byte patterns that
include the extremes (codes up to 2^code_bits - 1, values -128 and 127);
the result must equal numpy's integer dot in groups of four.
"""

from __future__ import annotations

import ctypes

import llvmlite.ir as ir
import numpy as np
import pytest

from quantir.compiler.backend import cpu_codegen as cpu
from quantir.compiler.backend.llvm.int_dot import (
    dot_strategy,
    emit_dot_u8i8,
    emit_scaled_dot_u8i8,
    native_split,
    parse_features,
    scaled_strategy,
)

HOST = parse_features(cpu.host_target().features)
VNNI = frozenset({"avx512vnni", "avx512vl", "avx512bw", "avx2", "ssse3"})
AVX2 = frozenset({"avx2", "ssse3"})


def test_strategy_follows_features_and_code_width():
    assert dot_strategy(32, 4, VNNI) == "vnni"
    assert dot_strategy(64, 8, VNNI) == "vnni"
    assert dot_strategy(32, 4, frozenset({"avxvnni", "avx2"})) == "vnni"
    assert dot_strategy(32, 7, AVX2) == "maddubs"
    # Eight-bit codes could saturate vpmaddubsw's 16-bit pairs: widen instead.
    assert dot_strategy(32, 8, AVX2) == "widen"
    assert dot_strategy(16, 4, frozenset({"ssse3"})) == "maddubs"
    assert dot_strategy(32, 4, frozenset()) == "widen"
    # 64 bytes without AVX-512 VNNI: two 32-byte halves, not the widening fallback.
    assert native_split(64, 4, frozenset({"avxvnni", "avx2"}))
    assert native_split(64, 7, AVX2) and not native_split(64, 8, AVX2)
    assert not native_split(64, 4, VNNI) and not native_split(32, 4, AVX2)


def _jit_dot(name: str, types: list, emit, inputs: tuple, lanes: int) -> np.ndarray:
    """Compile `out = emit(builder, intrinsic, *inputs loaded as types)` for the
    host and run it on `inputs`; the i32 result has `lanes` lanes."""
    mod = ir.Module(name=name)
    mod.triple = cpu.host_target().triple
    mod.data_layout = cpu.data_layout()
    ptr = ir.PointerType()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr] * (len(types) + 1)), name)
    b = ir.IRBuilder(fn.append_basic_block())
    loaded = [b.load(arg, typ=t, align=1) for arg, t in zip(fn.args, types)]

    def intrinsic(name, ret, args):
        existing = mod.globals.get(name)
        return existing or ir.Function(mod, ir.FunctionType(ret, args), name)

    b.store(emit(b, intrinsic, *loaded), fn.args[len(types)], align=1)
    b.ret_void()
    loaded_obj = cpu.LoadedObject(cpu.compile_object(mod))
    call = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (len(types) + 1))
    out = np.empty(lanes, np.int32)
    call(loaded_obj.address(name))(*(a.ctypes.data for a in (*inputs, out)))
    return out


def _run(nbytes: int, code_bits: int, features: frozenset[str], acc, codes, values):
    lanes = nbytes // 4
    bytes_t = ir.VectorType(ir.IntType(8), nbytes)
    types = [ir.VectorType(ir.IntType(32), lanes), bytes_t, bytes_t]

    def emit(b, intrinsic, *loaded):
        return emit_dot_u8i8(b, intrinsic, *loaded, code_bits, features)

    return _jit_dot("dot", types, emit, (acc, codes, values), lanes)


def _host_runs(strategy: str, nbytes: int) -> bool:
    """Whether this host has the instructions `strategy` uses on `nbytes` bytes."""
    if strategy == "vnni":
        if nbytes == 64:
            return "avx512vnni" in HOST
        return {"avx512vnni", "avx512vl"} <= HOST or "avxvnni" in HOST
    if strategy == "maddubs":
        return ("avx2" if nbytes == 32 else "ssse3") in HOST
    return True


CASES = [
    (nbytes, bits, features)
    for nbytes in (16, 32, 64)
    for bits in (2, 4, 6, 7, 8)
    for features in (VNNI, AVX2, frozenset())
]


@pytest.mark.parametrize("nbytes,code_bits,features", CASES)
def test_every_strategy_is_exact(nbytes, code_bits, features):
    native = nbytes // 2 if native_split(nbytes, code_bits, features) else nbytes
    strategy = dot_strategy(native, code_bits, features)
    if not _host_runs(strategy, native):
        pytest.skip(f"this host cannot run the {strategy} instructions for {native} bytes")
    rng = np.random.default_rng(nbytes * 100 + code_bits)
    lanes = nbytes // 4
    top = (1 << code_bits) - 1
    for trial in range(4):
        codes = rng.integers(0, top + 1, nbytes).astype(np.uint8)
        values = rng.integers(-128, 128, nbytes).astype(np.int8)
        if trial == 0:  # the largest products of both signs
            codes[:] = top
            values[::2], values[1::2] = -128, 127
        acc = rng.integers(-(2**20), 2**20, lanes).astype(np.int32)
        got = _run(nbytes, code_bits, features, acc, codes, values.view(np.uint8))
        want = acc + (codes.astype(np.int64) * values).reshape(lanes, 4).sum(1)
        np.testing.assert_array_equal(got, want.astype(np.int32), err_msg=strategy)


def _run_scaled(nbytes: int, features: frozenset[str], acc, codes, values, scales):
    lanes = nbytes // 4
    bytes_t = ir.VectorType(ir.IntType(8), nbytes)
    types = [ir.VectorType(ir.IntType(32), lanes), bytes_t, bytes_t]
    types.append(ir.VectorType(ir.IntType(16), lanes))

    def emit(b, intrinsic, *loaded):
        return emit_scaled_dot_u8i8(b, intrinsic, *loaded, features)

    return _jit_dot("scaled", types, emit, (acc, codes, values, scales), lanes)


def _scaled_host_runs(nbytes: int, features: frozenset[str]) -> bool:
    strategy = scaled_strategy(nbytes, features)
    if strategy == "split":
        return _scaled_host_runs(nbytes // 2, features)
    if strategy == "widen":
        return True
    needs = {64: {"avx512bw"}, 32: {"avx2"}, 16: {"ssse3"}}[nbytes]
    if strategy == "vnni":
        needs = needs | ({"avx512vnni"} if nbytes == 64 else set())
        if nbytes < 64 and not ({"avx512vnni", "avx512vl"} <= HOST or "avxvnni" in HOST):
            return False
    return needs <= HOST


def test_scaled_strategy_follows_features():
    assert scaled_strategy(64, VNNI) == "vnni"
    assert scaled_strategy(32, VNNI) == "vnni"
    assert scaled_strategy(32, frozenset({"avxvnni", "avx2"})) == "vnni"
    assert scaled_strategy(64, frozenset({"avxvnni", "avx2"})) == "split"
    assert scaled_strategy(32, AVX2) == "madd" and scaled_strategy(64, AVX2) == "split"
    assert scaled_strategy(64, frozenset({"avx512bw", "avx2"})) == "madd"
    assert scaled_strategy(32, frozenset()) == "widen"


@pytest.mark.parametrize(
    "nbytes,features", [(n, f) for n in (16, 32, 64) for f in (VNNI, AVX2, frozenset())]
)
def test_every_scaled_strategy_is_exact(nbytes, features):
    """acc + scale * dot for 7-bit codes, the extreme scales and the extreme values."""
    if not _scaled_host_runs(nbytes, features):
        pytest.skip(f"this host cannot run the scaled dot for {nbytes} bytes with {features}")
    rng = np.random.default_rng(nbytes)
    lanes = nbytes // 4
    for trial in range(4):
        codes = rng.integers(0, 128, nbytes).astype(np.uint8)
        values = rng.integers(-128, 128, nbytes).astype(np.int8)
        scales = rng.integers(-(2**15), 2**15, lanes).astype(np.int16)
        if trial == 0:  # the largest products of both signs, the largest scales
            codes[:] = 127
            values[::2], values[1::2] = -128, 127
            scales[::2], scales[1::2] = -(2**15), 2**15 - 1
        if trial == 1:
            codes[:], values[:] = 127, -128
            scales[:] = -(2**15)
        acc = rng.integers(-(2**20), 2**20, lanes).astype(np.int32)
        got = _run_scaled(nbytes, features, acc, codes, values.view(np.uint8), scales)
        dots = (codes.astype(np.int64) * values).reshape(lanes, 4).sum(1)
        want = (acc + scales.astype(np.int64) * dots + 2**31) % 2**32 - 2**31
        np.testing.assert_array_equal(got, want.astype(np.int32))
