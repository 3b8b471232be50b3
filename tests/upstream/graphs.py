"""Test graphs for the upstream cross-checks: one per encoding (and GPTQ variant).

Each graph is a `quant.qmatmul` and a `quant.dequantize` of one weight (and,
for GGUF, a `quant.gather` of its rows by `%ids`), so every encoding's
dequantize, gather and qmatmul kernels appear in its lowered IR.
"""

from __future__ import annotations

from quantir.dialects.encoding import QuantizationConfig, QuantizationEncoding, packed_layout

N, K = 32, 256

GGUF = [e for e in QuantizationEncoding if e.is_gguf]

GPTQ = [  # (bits, group_size, desc_act, sym)
    (4, 128, False, True),
    (4, 64, True, False),
    (3, 128, False, True),
    (2, 32, False, False),
    (8, 128, False, True),
]

_MLIR_DTYPE = {"uint8": "ui8", "int32": "i32", "float16": "f16"}


def _tensor(shape, dtype: str) -> str:
    return "tensor<" + "x".join(str(d) for d in shape) + "x" + _MLIR_DTYPE[dtype] + ">"


def gguf_graph(encoding: QuantizationEncoding) -> str:
    (part,) = packed_layout(encoding, None, N, K)
    w = _tensor(part.shape, part.dtype)
    enc = f"#quant.encoding<{encoding.name.lower()}>"
    e = f"tensor<?x{K}xf32>"
    results = f"tensor<?x{N}xf32>, tensor<{N}x{K}xf32>, {e}"
    return f"""func.func @f(%x: tensor<?x{K}xf32>, %ids: tensor<?xi32>) -> ({results}) {{
  %w = quant.weight "w" {enc} [{N}, {K}] : {w}
  %y = quant.qmatmul {enc} %x, %w : (tensor<?x{K}xf32>, {w}) -> tensor<?x{N}xf32>
  %d = quant.dequantize {enc} %w : ({w}) -> tensor<{N}x{K}xf32>
  %e = quant.gather {enc} %w, %ids : ({w}, tensor<?xi32>) -> {e}
  func.return %y, %d, %e : {results}
}}
"""


def gptq_config(bits: int, group_size: int, desc_act: bool, sym: bool) -> QuantizationConfig:
    return QuantizationConfig(
        quant_method="gptq", bits=bits, group_size=group_size, desc_act=desc_act, sym=sym
    )


def gptq_graph(bits: int, group_size: int, desc_act: bool, sym: bool) -> str:
    config = gptq_config(bits, group_size, desc_act, sym)
    parts = packed_layout(QuantizationEncoding.GPTQ, config, N, K)
    types = [_tensor(p.shape, p.dtype) for p in parts]
    cfg = (
        f"#quant.gptq<bits = {bits}, group_size = {group_size}, "
        f"desc_act = {str(desc_act).lower()}, sym = {str(sym).lower()}, format = gptq>"
    )
    op = f"#quant.encoding<gptq> config {cfg}"
    tlist = ", ".join(types)
    return f"""func.func @f(%x: tensor<?x{K}xf32>) -> (tensor<?x{N}xf32>, tensor<{N}x{K}xf32>) {{
  %qw, %qz, %s, %g = quant.weight "w" #quant.encoding<gptq> [{N}, {K}] config {cfg} : {tlist}
  %y = quant.qmatmul {op} %x, %qw, %qz, %s, %g : (tensor<?x{K}xf32>, {tlist}) -> tensor<?x{N}xf32>
  %d = quant.dequantize {op} %qw, %qz, %s, %g : ({tlist}) -> tensor<{N}x{K}xf32>
  func.return %y, %d : tensor<?x{N}xf32>, tensor<{N}x{K}xf32>
}}
"""


def all_graphs() -> dict[str, str]:
    """Every test graph by name: the GGUF encodings, then the GPTQ variants."""
    graphs = {e.name.lower(): gguf_graph(e) for e in GGUF}
    for bits, group, act, sym in GPTQ:
        name = f"gptq{bits}_g{group}" + ("_act" if act else "") + ("" if sym else "_asym")
        graphs[name] = gptq_graph(bits, group, act, sym)
    return graphs
