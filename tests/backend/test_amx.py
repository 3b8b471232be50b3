"""The amx dialect's LLVM translation, and its tile products run on AMX hosts.

The translation is checked on any host (with a target that claims AMX); the
products run where this process may use AMX tiles, every sign combination of
`amx.tile_muli` against numpy's integer matmul, with the right-hand bytes in
VNNI layout and strides both inferred and explicit.
"""

from __future__ import annotations

import ctypes
from dataclasses import replace

import numpy as np
import pytest
from xdsl.parser import Parser

from quantir.compiler.backend import cpu_codegen as cpu
from quantir.compiler.backend.calling_convention import kernel_argv
from quantir.compiler.backend.llvm_translation import TranslationError, translate_module
from quantir.compiler.context import make_context

KERNEL = """
func.func @product(%lo: index, %hi: index, %a: memref<16x64xi8>, %b: memref<?xi8>,
                   %c: memref<16x16xi32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %s = arith.constant 64 : index
  %z = amx.tile_zero : !amx.tile<16x16xi32>
  %ta = amx.tile_load %a[%c0, %c0] : memref<16x64xi8> into !amx.tile<16x64xi8>
  %tb = amx.tile_load %b[%c0], %s : memref<?xi8> into !amx.tile<16x64xi8>
  %r = amx.tile_muli %ta SA, %tb SB, %z
      : !amx.tile<16x64xi8>, !amx.tile<16x64xi8>, !amx.tile<16x16xi32>
  amx.tile_store %c[%c0, %c0], %r : memref<16x16xi32>, !amx.tile<16x16xi32>
  func.return
}
"""

SIGNS = {
    (True, False): "tdpbusd",
    (False, True): "tdpbsud",
    (True, True): "tdpbuud",
    (False, False): "tdpbssd",
}


def _module(zext_a: bool, zext_b: bool):
    text = KERNEL.replace("SA", "zext" if zext_a else "").replace("SB", "zext" if zext_b else "")
    return Parser(make_context(), text).parse_module()


def _with_amx(features: frozenset[str]):
    return replace(cpu.target_info(), features=features | {"amx-tile", "amx-int8"})


@pytest.mark.parametrize("signs", list(SIGNS), ids=list(SIGNS.values()))
def test_tile_ops_become_shaped_amx_intrinsics(signs) -> None:
    llvm_ir = str(translate_module(_module(*signs), _with_amx(frozenset()))[0])
    assert '@"llvm.x86.tilezero.internal"(i16 16, i16 64)' in llvm_ir
    assert 'call x86_amx @"llvm.x86.tileloadd64.internal"(i16 16, i16 64' in llvm_ir
    # (rows, bytes per accumulator row, bytes per left-hand row)
    assert f'@"llvm.x86.{SIGNS[signs]}.internal"(i16 16, i16 64, i16 64' in llvm_ir
    assert '@"llvm.x86.tilestored64.internal"(i16 16, i16 64' in llvm_ir


def test_tile_ops_need_an_amx_target() -> None:
    info = replace(cpu.target_info(), features=frozenset({"avx2"}))
    with pytest.raises(TranslationError, match="'amx.tile_zero' needs a CPU target with AMX"):
        translate_module(_module(True, False), info)


@pytest.mark.skipif(not cpu.amx_usable(), reason="the host has no AMX tiles (or may not use them)")
@pytest.mark.parametrize("signs", list(SIGNS), ids=list(SIGNS.values()))
def test_tile_products_are_exact(signs) -> None:
    zext_a, zext_b = signs
    ir_module, signatures = translate_module(_module(*signs), cpu.target_info())
    loaded = cpu.LoadedObject(cpu.compile_object(ir_module))
    sig = signatures["product"]
    rng = np.random.default_rng(sum(signs))
    a = rng.integers(0, 256, (16, 64)).astype(np.uint8 if zext_a else np.int8)
    b = rng.integers(0, 256, (64, 16)).astype(np.uint8 if zext_b else np.int8)
    b_vnni = np.ascontiguousarray(b.reshape(16, 4, 16).transpose(0, 2, 1).reshape(-1))
    c = np.full((16, 16), -1, np.int32)
    argv = kernel_argv(sig, [a.view(np.int8), b_vnni.view(np.int8), c])
    ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)(
        loaded.address("product")
    )(0, 1, argv.ctypes.data)
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))


def test_amx_usable_is_off_without_the_cpu_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tile code where the CPU lacks AMX (the request is never even made)."""
    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: calls.append(a))
    plain = cpu.HostTarget("x86_64-unknown-linux-gnu", "x", "+avx2,-amx-tile,-amx-int8")
    monkeypatch.setattr(cpu, "host_target", lambda: plain)
    cpu.amx_usable.cache_clear()
    try:
        assert not cpu.amx_usable() and not calls
    finally:
        cpu.amx_usable.cache_clear()
