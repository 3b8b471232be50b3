"""The PTX of every kernel kind assembles with ptxas for sm_80 and sm_90.

Runs wherever `ptxas` is on PATH (no GPU needed): every GGUF encoding's
dequantize, gather and qmatmul, GPTQ for every bit width with and without desc_act,
and the float graph ops.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.jit import compile_source

pytestmark = pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas is not on PATH")

ARCHS = ("sm_80", "sm_90")


def gguf_graph(enc: QuantizationEncoding, k: int = 512) -> str:
    b = k // enc.elements_per_block * enc.block_size
    name = enc.name
    return f"""
func.func @f(%x: tensor<?x{k}xf32>, %w: tensor<?x{b}xui8>, %ids: tensor<?x?xi64>)
    -> (tensor<?x?xf32>, tensor<?x{k}xf32>, tensor<?x?x{k}xf32>) {{
  %y = quant.qmatmul #quant.encoding<{name}> %x, %w
      : (tensor<?x{k}xf32>, tensor<?x{b}xui8>) -> tensor<?x?xf32>
  %d = quant.dequantize #quant.encoding<{name}> %w : (tensor<?x{b}xui8>) -> tensor<?x{k}xf32>
  %e = quant.gather #quant.encoding<{name}> %w, %ids
      : (tensor<?x{b}xui8>, tensor<?x?xi64>) -> tensor<?x?x{k}xf32>
  func.return %y, %d, %e : tensor<?x?xf32>, tensor<?x{k}xf32>, tensor<?x?x{k}xf32>
}}"""


def gptq_graph(bits: int, group_size: int, desc_act: bool, k: int = 256) -> str:
    g = 1 if group_size == -1 else k // group_size
    cfg = (
        f"#quant.gptq<bits = {bits}, group_size = {group_size}, "
        f"desc_act = {str(desc_act).lower()}, sym = false, format = gptq>"
    )
    t = f"tensor<{k * bits // 32}x?xi32>, tensor<{g}x?xi32>, tensor<{g}x?xf16>, tensor<{k}xi32>"
    return f"""
func.func @f(%x: tensor<?x{k}xf32>, %a: tensor<{k * bits // 32}x?xi32>, %b: tensor<{g}x?xi32>,
             %c: tensor<{g}x?xf16>, %d: tensor<{k}xi32>) -> (tensor<?x?xf32>, tensor<?x{k}xf32>) {{
  %y = quant.qmatmul #quant.encoding<gptq> config {cfg} %x, %a, %b, %c, %d
      : (tensor<?x{k}xf32>, {t}) -> tensor<?x?xf32>
  %w = quant.dequantize #quant.encoding<gptq> config {cfg} %a, %b, %c, %d
      : ({t}) -> tensor<?x{k}xf32>
  func.return %y, %w : tensor<?x?xf32>, tensor<?x{k}xf32>
}}"""


FLOAT_OPS = """
func.func @f(%x: tensor<?x64xf32>, %w: tensor<64x40xf32>, %b: tensor<40xf32>) -> tensor<?x40xf32> {
  %y = qnn.matmul %x, %w : (tensor<?x64xf32>, tensor<64x40xf32>) -> tensor<?x40xf32>
  %z = qnn.add %y, %b : (tensor<?x40xf32>, tensor<40xf32>) -> tensor<?x40xf32>
  %m = qnn.mul %z, %z : (tensor<?x40xf32>, tensor<?x40xf32>) -> tensor<?x40xf32>
  func.return %m : tensor<?x40xf32>
}"""

GRAPHS = {e.name: gguf_graph(e) for e in QuantizationEncoding if e.is_gguf}
for _bits in (2, 3, 4, 8):
    GRAPHS[f"gptq{_bits}"] = gptq_graph(_bits, 32, False)
    GRAPHS[f"gptq{_bits}-act"] = gptq_graph(_bits, 64, True)
GRAPHS["gptq4-g-1"] = gptq_graph(4, -1, False)
GRAPHS["float-ops"] = FLOAT_OPS


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_ptx_assembles(name: str, arch: str, tmp_path) -> None:
    compiled = compile_source(GRAPHS[name], "gpu", gpu_arch=arch)
    assert f".target {arch}" in compiled.ptx
    ptx = tmp_path / "k.ptx"
    ptx.write_text(compiled.ptx)
    result = subprocess.run(
        ["ptxas", f"-arch={arch}", str(ptx), "-o", str(tmp_path / "k.cubin")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # Every kernel the host plan launches is in the PTX, as an entry.
    for kernel in compiled.signatures:
        assert f".entry {kernel}(" in compiled.ptx


@pytest.mark.parametrize("op", ["dequantize", "gather"])
def test_dequantize_ptx_has_no_fused_multiply_add(op: str) -> None:
    """ggml computes d*q - m with separate roundings; so must the GPU."""
    if op == "dequantize":
        source = """
func.func @f(%w: tensor<?x144xui8>) -> tensor<?x256xf32> {
  %y = quant.dequantize #quant.encoding<q4_k> %w : (tensor<?x144xui8>) -> tensor<?x256xf32>
  func.return %y : tensor<?x256xf32>
}"""
    else:
        source = """
func.func @f(%w: tensor<?x144xui8>, %i: tensor<?xi32>) -> tensor<?x256xf32> {
  %y = quant.gather #quant.encoding<q4_k> %w, %i
      : (tensor<?x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
  func.return %y : tensor<?x256xf32>
}"""
    ptx = compile_source(source, "gpu", gpu_arch="sm_90").ptx
    assert "mul.rn.f32" in ptx and "sub.rn.f32" in ptx
    assert "fma.rn.f32" not in ptx and "mad.f32" not in ptx and "mad.rn.f32" not in ptx
