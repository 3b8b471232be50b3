"""A cold compile runs with Python's cyclic garbage collector paused, and leaves it
as it found it (on or off), also when the compile fails or compiles nest."""

from __future__ import annotations

import gc

import pytest

from quantir.compiler.diagnostics import UserError
from quantir.runtime import jit

GRAPH = """
func.func @deq(%w: tensor<?x34xui8>) -> tensor<?x32xf32> {
  %y = quant.dequantize #quant.encoding<q8_0> %w : (tensor<?x34xui8>) -> tensor<?x32xf32>
  func.return %y : tensor<?x32xf32>
}
"""


@pytest.fixture
def cold(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "_memory", {})
    monkeypatch.setattr(jit, "_keys", {})
    monkeypatch.setattr(jit, "_kernel_objects", {})


def _recording_build(monkeypatch) -> list[bool]:
    seen: list[bool] = []
    real = jit._build

    def build(*args, **kwargs):
        seen.append(gc.isenabled())
        if len(seen) == 1:  # a compile inside a compile keeps it paused
            jit.compile_source(GRAPH.replace("@deq", "@inner"))
            seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(jit, "_build", build)
    return seen


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_is_paused_during_a_compile_and_restored(cold, monkeypatch, enabled):
    seen = _recording_build(monkeypatch)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        jit.compile_source(GRAPH)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False, False, False]


def test_collector_is_restored_when_the_compile_fails(cold):
    assert gc.isenabled()
    with pytest.raises(UserError):
        jit.compile_source("func.func @f() { not mlir")
    assert gc.isenabled()
