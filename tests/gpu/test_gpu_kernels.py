"""GPU kernels against the CPU path (needs an NVIDIA GPU; skipped without one).

Dequantize and gather must be bit-identical to the CPU (and so to ggml / the
GPTQ formula); qmatmul must agree with the CPU within the float32 accumulation
bound. Also covers resident weights, graphs with float ops, and driver
errors surfacing as Python errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from quantir.compiler.encodings import layout_for
from quantir.dialects.encoding import QuantizationConfig, QuantizationEncoding
from quantir.runtime import cuda
from quantir.runtime.api import dequantize, gather, qmatmul
from quantir.runtime.buffers import BufferError

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda.available(), reason="no NVIDIA GPU / CUDA driver"),
]

GGUF = [e for e in QuantizationEncoding if e.is_gguf]


def random_blocks(enc: QuantizationEncoding, n: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    nb = k // enc.elements_per_block
    w = rng.integers(0, 256, size=(n, nb, enc.block_size), dtype=np.uint8)
    for off in layout_for(enc).fp16_fields.values():
        d = rng.uniform(-0.05, 0.05, size=(n, nb)).astype(np.float16)
        w[:, :, off : off + 2] = d.view(np.uint8).reshape(n, nb, 2)
    return w.reshape(n, nb * enc.block_size)


def bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-element float32 accumulation bound: 2 * K * eps * sum |x||w|."""
    k = x.shape[-1]
    return 2 * k * np.finfo(np.float32).eps * (np.abs(x).astype(np.float64) @ np.abs(w).T) + 1e-30


@pytest.mark.parametrize("enc", GGUF, ids=lambda e: e.name)
def test_gguf_matches_cpu(enc: QuantizationEncoding) -> None:
    w = random_blocks(enc, 72, 1024)
    cpu = dequantize(enc, w)
    gpu = dequantize(enc, w, device="cuda:0")
    assert np.array_equal(gpu.view(np.uint32), cpu.view(np.uint32))
    for m in (1, 3, 64):
        x = np.random.default_rng(m).standard_normal((m, 1024)).astype(np.float32)
        ref = x.astype(np.float64) @ cpu.astype(np.float64).T
        y = qmatmul(enc, x, w, device="cuda:0")
        assert np.all(np.abs(y - ref) <= bound(x, cpu)), enc.name


@pytest.mark.parametrize("enc", GGUF, ids=lambda e: e.name)
def test_gather_matches_gguf_py(enc: QuantizationEncoding) -> None:
    """Repeated, unsorted ids (first and last row included), 1-D int32 and 2-D int64."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    w = random_blocks(enc, 45, 512, seed=3)
    ids = np.array([44, 0, 7, 44, 3, 7, 0, 21, 9], np.int32)
    ref = gguf_dequantize(w[ids], GGMLQuantizationType[enc.name.upper()])
    gpu = gather(w, ids, encoding=enc, device="cuda:0")
    assert np.array_equal(gpu.view(np.uint32), ref.view(np.uint32)), enc.name
    ids2 = ids[:8].astype(np.int64).reshape(2, 4)
    gpu2 = gather(w, ids2, encoding=enc, device="cuda:0")
    assert np.array_equal(gpu2.reshape(8, -1).view(np.uint32), ref[:8].view(np.uint32))


def test_gather_with_resident_table_and_ids() -> None:
    """Device-resident indices are checked too (copied to the host first)."""
    enc = QuantizationEncoding.Q6_K
    w = random_blocks(enc, 40, 256, seed=4)
    table = cuda.to_device(w)
    ids = np.array([3, 39, 3], np.int64)
    y = gather(table, cuda.to_device(ids), encoding=enc, device="cuda:0")
    assert np.array_equal(y.view(np.uint32), gather(w, ids, encoding=enc).view(np.uint32))
    with pytest.raises(BufferError, match=r"index 40 at position 1 is past the last row \(39\)"):
        gather(table, cuda.to_device(np.array([0, 40], np.int64)), encoding=enc, device="cuda:0")
    with pytest.raises(BufferError, match="index -2 at position 0 is negative"):
        gather(w, np.array([-2], np.int32), encoding=enc, device="cuda:0")


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group_size,desc_act", [(-1, False), (32, False), (64, True)])
@pytest.mark.parametrize("fmt", ["gptq", "gptq_v2"])
def test_gptq_matches_cpu(bits: int, group_size: int, desc_act: bool, fmt: str) -> None:
    from quantir.runtime.gptq import quantize_gptq_rtn

    w = np.random.default_rng(bits).standard_normal((96, 256)).astype(np.float32)
    layer = quantize_gptq_rtn(
        w, bits, group_size, sym=False, desc_act=desc_act, checkpoint_format=fmt
    )
    cpu = dequantize("gptq", layer.tensors(), config=layer.config, checkpoint_format=fmt)
    gpu = dequantize(
        "gptq", layer.tensors(), config=layer.config, checkpoint_format=fmt, device="cuda:0"
    )
    assert np.array_equal(gpu.view(np.uint32), cpu.view(np.uint32))
    x = np.random.default_rng(1).standard_normal((3, 256)).astype(np.float32)
    y = qmatmul(
        "gptq", x, layer.tensors(), config=layer.config, checkpoint_format=fmt, device="cuda:0"
    )
    ref = x.astype(np.float64) @ cpu.astype(np.float64).T
    assert np.all(np.abs(y - ref) <= bound(x, cpu))


def test_resident_weights_are_reused() -> None:
    enc = QuantizationEncoding.Q4_K
    w = random_blocks(enc, 64, 512)
    resident = cuda.to_device(w)
    x = np.random.default_rng(0).standard_normal((2, 512)).astype(np.float32)
    first = qmatmul(enc, x, resident, device="cuda:0")
    second = qmatmul(enc, x, resident, device="cuda:0")
    assert np.array_equal(first, second)
    # Against the exact float product (the CPU's default int8 path rounds x to
    # 8 bits: about 5e-3 normwise, far above a float32 tolerance).
    cpu = dequantize(enc, w)
    ref = x.astype(np.float64) @ cpu.astype(np.float64).T
    assert np.all(np.abs(first - ref) <= bound(x, cpu))
    assert np.array_equal(
        dequantize(enc, resident, device="cuda:0").view(np.uint32), cpu.view(np.uint32)
    )


def test_gptq_config_required_on_gpu_too() -> None:
    with pytest.raises(ValueError, match="config"):
        qmatmul("gptq", np.zeros((1, 64), np.float32), [np.zeros(1)] * 4, device="cuda:0")


def test_graph_with_float_ops_on_gpu() -> None:
    from quantir.runtime.jit import compile_source, load_program

    source = """
func.func @f(%x: tensor<?x64xf32>, %w: tensor<64x40xf32>, %b: tensor<40xf32>) -> tensor<?x40xf32> {
  %y = qnn.matmul %x, %w : (tensor<?x64xf32>, tensor<64x40xf32>) -> tensor<?x40xf32>
  %z = qnn.add %y, %b : (tensor<?x40xf32>, tensor<40xf32>) -> tensor<?x40xf32>
  func.return %z : tensor<?x40xf32>
}"""
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((5, 64), (64, 40), (40,)))
    gpu = cuda.GpuDevice.get(0)
    compiled = compile_source(source, "gpu", gpu_arch=gpu.arch)
    (y,) = load_program(compiled, device=gpu.bind(compiled.ptx))([x, w, b])
    assert np.allclose(y, x @ w + b, rtol=1e-5, atol=1e-5)


def test_bad_ptx_is_a_clear_error() -> None:
    with pytest.raises(cuda.CudaError, match="cuModuleLoadDataEx"):
        cuda.GpuDevice.get(0).load(".version 99.0\n.target sm_90\n.address_size 64\n")


def test_config_object_reused() -> None:
    assert QuantizationConfig("gptq", 4, 128).num_groups(256) == 2
