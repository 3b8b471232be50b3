"""The per-kernel disk cache (runtime/jit.py, `cache.KERNELS`): each distinct
kernel's object code is cached under a hash of its LLVM IR, the host target and
the compiler's versions, so a new graph made of known kernels compiles without
LLVM, and kernels of different encodings, shapes or options never share an entry."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from quantir.compiler.backend import cpu_codegen
from quantir.compiler.diagnostics import UserError
from quantir.compiler.graph import DType, Graph, TensorType, Weight, ops
from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime import api, cache, compile_graph, jit
from quantir.runtime.quantize import quantize

Q4_K, Q6_K = QuantizationEncoding.Q4_K, QuantizationEncoding.Q6_K


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(d))
    monkeypatch.delenv("QUANTIR_CACHE", raising=False)
    _forget(monkeypatch)
    return d


def _forget(monkeypatch) -> None:
    """A new process: nothing compiled in memory."""
    monkeypatch.setattr(jit, "_memory", {})
    monkeypatch.setattr(jit, "_keys", {})
    monkeypatch.setattr(jit, "_kernel_objects", {})


@pytest.fixture
def llvm_compiles(monkeypatch) -> list:
    """Every module LLVM compiles (one per kernel compiled)."""
    calls: list = []
    for name in ("compile_object", "_compile_isolated"):  # serial and in threads
        real = getattr(cpu_codegen, name)

        def counting(module, _real=real):
            calls.append(module)
            return _real(module)

        monkeypatch.setattr(cpu_codegen, name, counting)
    return calls


@pytest.fixture
def kernel_keys(monkeypatch) -> dict:
    """Every kernel key computed: key -> the LLVM IR it stands for."""
    seen: dict[str, str] = {}
    real = jit.kernel_key

    def recording(llvm_ir):
        key = real(llvm_ir)
        assert seen.setdefault(key, llvm_ir) == llvm_ir, "one key, two kernels"
        return key

    monkeypatch.setattr(jit, "kernel_key", recording)
    return seen


def _weights(names_encodings):
    rng = np.random.default_rng(3)
    return {
        n: quantize(e.value, rng.standard_normal((32, 256)).astype(np.float32))
        for n, e in names_encodings
    }


def _graph(name: str, layout) -> Graph:
    """One qmatmul of x per (weight name, encoding) in `layout`, summed."""
    with Graph(name, input_types=[TensorType(DType.float32, ["m", 256])]) as g:
        x = g.inputs[0]
        total = None
        for n, e in layout:
            w = g.add_weight(Weight(n, DType.uint8, [32, 256], quantization_encoding=e))
            y = ops.qmatmul(e, None, x, w)
            total = y if total is None else total + y
        g.output(total)
    return g


def _reference(x, packed, layout):
    kinds = {Q4_K: GGMLQuantizationType.Q4_K, Q6_K: GGMLQuantizationType.Q6_K}
    return sum(
        x.astype(np.float64) @ gguf_dequantize(packed[n], kinds[e]).astype(np.float64).T
        for n, e in layout
    )


def test_new_graph_of_known_kernels_compiles_without_llvm(cache_dir, llvm_compiles, monkeypatch):
    first = [("a", Q4_K), ("b", Q6_K)]
    compile_graph(_graph("first", first), threads=1, exact=True)
    assert llvm_compiles, "the first graph compiles its kernels"
    assert list((cache_dir / cache.KERNELS).glob("*.qbin"))
    # Another graph (other name, weights, order, a repeated op) of the same
    # kernels, in a new process: the host plan is new, the machine code is not.
    _forget(monkeypatch)
    llvm_compiles.clear()
    second = [("p", Q6_K), ("q", Q4_K), ("r", Q4_K)]
    compiled = compile_graph(_graph("second", second), threads=1, exact=True)
    assert llvm_compiles == []
    packed = _weights(second)
    x = np.random.default_rng(4).standard_normal((3, 256)).astype(np.float32)
    (y,) = compiled(x, weights=packed)
    np.testing.assert_allclose(y, _reference(x, packed, second), rtol=1e-4, atol=1e-3)


def test_cache_off_still_compiles_each_kernel_once_per_process(
    cache_dir, llvm_compiles, monkeypatch
):
    monkeypatch.setenv("QUANTIR_CACHE", "0")
    compile_graph(_graph("first", [("a", Q4_K), ("b", Q4_K)]), threads=1)
    n = len(llvm_compiles)
    compile_graph(_graph("second", [("p", Q4_K), ("q", Q4_K)]), threads=1)
    assert len(llvm_compiles) == n
    assert not cache_dir.exists()


def test_keys_differ_for_encodings_shapes_and_options(cache_dir, kernel_keys):
    """Each configuration's kernels get keys of their own (the recording fixture
    also checks that no key ever stands for two different kernels)."""
    rng = np.random.default_rng(5)
    configurations = []
    for encoding, k in (("q4_0", 256), ("q4_1", 256), ("q4_k", 256), ("q4_k", 512)):
        packed = quantize(encoding, rng.standard_normal((8, k)).astype(np.float32))
        x = np.ones((1, k), np.float32)
        for kwargs in ({}, {"exact": True}, {"pipeline": "quantir-cpu-scalar"}):
            before = set(kernel_keys)
            api.qmatmul(encoding, x, packed, **kwargs)
            configurations.append(set(kernel_keys) - before)
        before = set(kernel_keys)
        api.dequantize(encoding, packed)
        configurations.append(set(kernel_keys) - before)
    # Every configuration's matmul (or dequantize) kernel is new to it; only
    # helpers may be shared (the int8 path's x quantizer, for one K).
    assert all(configurations)
    assert len(kernel_keys) >= len(configurations)


def test_key_covers_target_and_versions(cache_dir, kernel_keys, monkeypatch):
    packed = quantize("q8_0", np.ones((4, 64), np.float32))
    api.dequantize("q8_0", packed)
    keys = set(kernel_keys)
    for name, value in (("target_key", lambda *a: "other-cpu"), ("_versions", lambda: "v9")):
        _forget(monkeypatch)
        monkeypatch.setattr(jit, name, value)
        kernel_keys.clear()
        api.dequantize("q8_0", packed)
        assert keys.isdisjoint(kernel_keys), name


def _corrupt_meta(payload: bytes, change) -> bytes:
    (n,) = struct.unpack_from("<Q", payload)
    meta = json.dumps(change(json.loads(payload[8 : 8 + n]))).encode()
    return struct.pack("<Q", len(meta)) + meta + payload[8 + n :]


KERNEL_CORRUPTIONS = {
    "flip-object": lambda p: p[:-10] + bytes([p[-10] ^ 0x5A]) + p[-9:],
    "truncate": lambda p: p[: len(p) // 2],
    "other-symbol": lambda p: _corrupt_meta(p, lambda m: m | {"symbol": "qk_other"}),
    "digest": lambda p: _corrupt_meta(p, lambda m: m | {"object_sha256": "0" * 64}),
    "not-json": lambda p: struct.pack("<Q", 3) + b"{{{" + p,
    "empty": lambda p: b"",
}


@pytest.mark.parametrize("how", list(KERNEL_CORRUPTIONS))
def test_bad_kernel_entry_is_compiled_again(how, cache_dir, llvm_compiles, monkeypatch):
    packed = quantize("q8_0", np.random.default_rng(6).standard_normal((4, 64)).astype(np.float32))
    expected = gguf_dequantize(packed, GGMLQuantizationType.Q8_0)
    api.dequantize("q8_0", packed)
    (entry,) = (cache_dir / cache.KERNELS).glob("*.qbin")
    good = entry.read_bytes()
    payload = cache.load(entry.stem, cache.KERNELS)
    assert payload is not None
    # A well-formed entry (valid checksum) whose content is wrong for its key.
    bad = KERNEL_CORRUPTIONS[how](payload)
    entry.write_bytes(
        cache._HEADER.pack(cache.MAGIC, cache.FORMAT, cache._digest(entry.stem, bad)) + bad
    )
    for graph_entry in cache_dir.glob("*.qbin"):
        graph_entry.unlink()  # the graph must be compiled again, from its kernels
    _forget(monkeypatch)
    llvm_compiles.clear()
    y = api.dequantize("q8_0", packed)
    assert len(llvm_compiles) == 1
    assert np.array_equal(y.view(np.uint32), expected.view(np.uint32))
    assert entry.read_bytes() == good  # rebuilt in place


def test_parallel_compiles_give_the_same_objects(cache_dir, monkeypatch):
    """Kernels compiled in several threads (an LLVM context each) are the bytes
    one thread makes, and QUANTIR_COMPILE_THREADS chooses how many."""
    layout = [("a", Q4_K), ("b", Q6_K)]
    objects = {}
    for threads in ("1", "4"):
        monkeypatch.setenv("QUANTIR_COMPILE_THREADS", threads)
        assert jit.compile_threads() == int(threads)
        _forget(monkeypatch)
        monkeypatch.setenv("QUANTIR_CACHE_DIR", str(cache_dir / threads))
        compiled = compile_graph(_graph("par", layout), threads=1, exact=True)
        objects[threads] = jit._memory[next(iter(jit._memory))].objects
        packed = _weights(layout)
        x = np.ones((2, 256), np.float32)
        (y,) = compiled(x, weights=packed)
        np.testing.assert_allclose(y, _reference(x, packed, layout), rtol=1e-4, atol=1e-3)
    assert len(objects["1"]) > 1 and objects["1"] == objects["4"]
    monkeypatch.setenv("QUANTIR_COMPILE_THREADS", "many")
    with pytest.raises(UserError, match="QUANTIR_COMPILE_THREADS"):
        jit.compile_threads()
