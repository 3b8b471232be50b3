"""Build examples/tiny_mlp.mlir's graph in Python, run it, and check it two ways.

    python examples/build_graph.py [--print-ir] [--save-ir PATH] [--threads N] [--exact]

1. The graph builder (`quantir.compiler.graph`) builds the same function as
   examples/tiny_mlp.mlir; `--print-ir` prints its MLIR and `--save-ir`
   writes it (then `quantir-run PATH ...` runs it like the hand-written file).
2. The compiled graph (`quantir.runtime.compile_graph`) runs on
   examples/x.npy with the packed weights of examples/tiny-llama-q4_k_m.gguf,
   bound by name from the memory-mapped file.
3. The eager API (`quantir.runtime.api.qmatmul`, one op at a time) and a
   numpy reference on weights dequantized by gguf-py (bit-identical to
   ggml) compute the same thing; the script prints the differences and
   exits with status 1 if they exceed what the arithmetic allows: the graph
   and the eager API run the same kernels (float32 rounding apart); against
   the reference, the default int8-activation path stays within a normwise
   relative error of 2e-2 over the five chained matmuls, and `--exact`
   within float32 rounding.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from quantir.compiler.graph import DType, Graph, TensorType, TensorValue, Weight, ops
from quantir.dialects.encoding import QuantizationEncoding as Enc
from quantir.runtime import api, compile_graph
from quantir.runtime.gguf import open_gguf

HERE = Path(__file__).resolve().parent
MODEL = HERE / "tiny-llama-q4_k_m.gguf"
INPUT = HERE / "x.npy"

# (block, encoding of ffn_down): llama.cpp's Q4_K_M mix falls back to Q5_0 and
# Q8_0 for ffn_down, whose 288-weight rows are not a multiple of 256.
BLOCKS = ((0, Enc.Q5_0), (1, Enc.Q8_0))
EMBED, FFN, VOCAB = 256, 288, 32
TOLERANCE = 1e-4  # float32 sums in a different order; values are O(1)
INT8_RELATIVE = 2e-2  # normwise, five chained matmuls with x quantized to int8 blocks


def _quantized(g: Graph, name: str, encoding: Enc, n: int, k: int) -> TensorValue:
    weight = Weight(name, DType.uint8, [n, k], quantization_encoding=encoding)
    return g.add_weight(weight)  # type: ignore[return-value]


def build_tiny_mlp() -> Graph:
    """The graph of examples/tiny_mlp.mlir (see the comments there)."""
    with Graph(
        "tiny_mlp", input_types=[TensorType(DType.float32, ["batch", EMBED])], input_names=["x"]
    ) as g:
        x = g.inputs[0]
        for block, down_encoding in BLOCKS:
            p = f"blk.{block}."
            norm = g.add_weight(Weight(p + "ffn_norm.weight", DType.float32, [EMBED]))
            gate = _quantized(g, p + "ffn_gate.weight", Enc.Q4_K, FFN, EMBED)
            up = _quantized(g, p + "ffn_up.weight", Enc.Q4_K, FFN, EMBED)
            down = _quantized(g, p + "ffn_down.weight", down_encoding, EMBED, FFN)
            xn = x * norm
            h = ops.qmatmul(Enc.Q4_K, None, xn, gate) * ops.qmatmul(Enc.Q4_K, None, xn, up)
            x = x + ops.qmatmul(down_encoding, None, h, down)
        norm = g.add_weight(Weight("output_norm.weight", DType.float32, [EMBED]))
        head = _quantized(g, "output.weight", Enc.Q6_K, VOCAB, EMBED)
        g.output(ops.qmatmul(Enc.Q6_K, None, x * norm, head))
    return g


def eager_tiny_mlp(
    x: np.ndarray, model, threads: int | None = None, exact: bool = False
) -> np.ndarray:
    """The same computation with the eager API: one compiled op per call."""

    def qmm(encoding: Enc, a: np.ndarray, name: str) -> np.ndarray:
        return api.qmatmul(encoding, a, model.tensor(name).data, threads=threads, exact=exact)

    for block, down_encoding in BLOCKS:
        p = f"blk.{block}."
        xn = x * model.tensor(p + "ffn_norm.weight").data
        h = qmm(Enc.Q4_K, xn, p + "ffn_gate.weight") * qmm(Enc.Q4_K, xn, p + "ffn_up.weight")
        x = x + qmm(down_encoding, h, p + "ffn_down.weight")
    return qmm(Enc.Q6_K, x * model.tensor("output_norm.weight").data, "output.weight")


def numpy_tiny_mlp(x: np.ndarray, model) -> np.ndarray:
    """The reference: weights dequantized by gguf-py (`GGUFTensor.to_float32`), numpy math."""
    w = {t.name: t.to_float32() for t in model.tensors}
    for block, _ in BLOCKS:
        p = f"blk.{block}."
        xn = x * w[p + "ffn_norm.weight"]
        h = (xn @ w[p + "ffn_gate.weight"].T) * (xn @ w[p + "ffn_up.weight"].T)
        x = x + h @ w[p + "ffn_down.weight"].T
    return (x * w["output_norm.weight"]) @ w["output.weight"].T


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-ir", action="store_true", help="print the graph's MLIR")
    parser.add_argument("--save-ir", metavar="PATH", help="write the graph's MLIR to PATH")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument(
        "--exact", action="store_true", help="exact float qmatmul instead of int8 activations"
    )
    args = parser.parse_args(argv)

    graph = build_tiny_mlp()
    if args.print_ir:
        print(graph.to_mlir())
    if args.save_ir:
        Path(args.save_ir).write_text(graph.to_mlir())
        print(f"wrote {args.save_ir}")

    x = np.load(INPUT)
    model = open_gguf(MODEL)
    compiled = compile_graph(graph, threads=args.threads, exact=args.exact)
    (y,) = compiled(x, weights=model)  # weights bound by name from the mapped file
    eager = eager_tiny_mlp(x, model, args.threads, args.exact)
    reference = numpy_tiny_mlp(x, model)

    print(f"logits: {y.dtype} {list(y.shape)}; first row: {np.array2string(y[0, :6], precision=4)}")
    diff_ref = float(np.abs(y - reference).max())
    rel_ref = float(np.linalg.norm(y - reference) / np.linalg.norm(reference))
    diff_eager = float(np.abs(y - eager).max())
    print(f"max |graph - numpy reference| = {diff_ref:.3g} (normwise relative {rel_ref:.3g})")
    print(f"max |graph - eager API|       = {diff_eager:.3g}")
    ref_ok = diff_ref <= TOLERANCE if args.exact else rel_ref <= INT8_RELATIVE
    if diff_eager > TOLERANCE or not ref_ok:
        print("MISMATCH: differences above what the arithmetic allows", file=sys.stderr)
        return 1
    print("OK: the graph, the eager API and the numpy reference agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
