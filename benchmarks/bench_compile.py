"""Model-scale costs: open a GGUF file, compile a graph of all its matrices, run it.

    python benchmarks/bench_compile.py FILE.gguf [--json]
    python benchmarks/bench_compile.py --write-synthetic OUT.gguf [--vocab N] [--layers L]
        [--like gemma-3-270m]

For FILE it builds one graph holding a `quant.qmatmul` for every 2-D
quantized matrix quantir supports (input xK [1, K] per distinct K; each
product is an output), and a second graph holding one op per distinct
(encoding, N, K): the cost a whole-model graph should approach once equal
kernels are compiled once. When the file's token embedding
(`token_embd.weight`) is quantized, a third graph is the full one plus a
`quant.gather` of token ids from that table (input `ids` [t], int32), as a
model's first step reads it. It reports, side by side:

* open: `open_gguf` (quantir's lazy reader) and gguf-py's `GGUFReader` on the
  same file, best of several opens; and the Python memory peak of each open
  (tracemalloc; the mapped file itself is not counted by either);
* cold compile: `compile_graph` with an empty kernel cache, for the full graph
  and for the distinct-op graph (`--compile-repeats N`: N alternating rounds,
  the best time of each and the median of the rounds' ratios);
* warm compile: the full graph again from the disk cache (the in-process
  memo cleared), as a new process would;
* known kernels: the full graph in a new process whose disk cache holds only
  the distinct-op graph's kernels (no entry for the graph itself): lowering
  and host plans, but no LLVM (the per-kernel cache);
* run: one call of the compiled full graph, weights bound from the mapped
  file, best of several calls;
* gather: cold compile, warm compile and run (8 token ids) of the graph with
  the gather, measured the same way.

`--write-synthetic` writes a llama-like file with gguf-py's writer
(through `write_gguf`): a tokenizer of N strings with scores and token types
(like a real vocabulary) and L blocks of Q4_K/Q6_K matrices, for a run when
no real model file is at hand; `--like gemma-3-270m` gives the blocks
gemma-3-270M's shapes and the Q5_0/Q8_0/Q4_K/Q6_K mix of its Q4_K_M file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def quantized_matrices(model) -> list:
    """The 2-D tensors of a supported encoding, in file order."""
    return [t for t in model.tensors if t.encoding is not None and len(t.shape) == 2]


EMBEDDING = "token_embd.weight"


def quantized_embedding(matrices: list):
    """The token embedding table among the quantized matrices, or None."""
    return next((t for t in matrices if t.name == EMBEDDING), None)


def build_graph(name: str, matrices: list, embedding=None):
    """One qmatmul per matrix; x_K inputs [m, K], one per distinct K.

    With `embedding`, also a gather of rows of it by an `ids` input [t]
    (int32), its result the last output.
    """
    from quantir.compiler.graph import DType, Graph, TensorType, ops

    ks = sorted({t.shape[1] for t in matrices})
    types = [TensorType(DType.float32, ["m", k]) for k in ks]
    names = [f"x{k}" for k in ks]
    if embedding is not None:
        types.append(TensorType(DType.int32, ["t"]))
        names.append("ids")
    with Graph(name, input_types=types, input_names=names) as g:
        x_of = dict(zip(ks, g.inputs, strict=False))
        outputs = []
        for t in matrices:
            w = g.add_weight(t.as_weight())
            outputs.append(ops.qmatmul(t.encoding, None, x_of[t.shape[1]], w))
        if embedding is not None:
            table = g.add_weight(embedding.as_weight())
            outputs.append(ops.gather(embedding.encoding, table, g.inputs[-1]))
        g.output(*outputs)
    return g, ks


def distinct(matrices: list) -> list:
    seen: dict[tuple, object] = {}
    for t in matrices:
        seen.setdefault((t.encoding, t.shape), t)
    return list(seen.values())


def _forget_compiled() -> None:
    """Drop the in-process kernel memo, as a new process starts."""
    from quantir.runtime import jit

    jit._memory.clear()
    jit._keys.clear()
    jit._kernel_objects.clear()


@contextmanager
def _empty_cache():
    """A fresh, empty on-disk kernel cache (and no in-process memo) for the block;
    the caller's QUANTIR_CACHE_DIR and a clean memo afterwards."""
    saved = os.environ.get("QUANTIR_CACHE_DIR")
    try:
        with tempfile.TemporaryDirectory(prefix="quantir-bench-cache-") as cache_dir:
            os.environ["QUANTIR_CACHE_DIR"] = cache_dir
            _forget_compiled()
            yield
    finally:
        if saved is None:
            os.environ.pop("QUANTIR_CACHE_DIR", None)
        else:
            os.environ["QUANTIR_CACHE_DIR"] = saved
        _forget_compiled()


def _timed_compile(graph):
    from quantir.runtime import compile_graph

    start = time.perf_counter()
    compiled = compile_graph(graph)
    return compiled, time.perf_counter() - start


def measure(path: Path, repeats: int = 5, compile_repeats: int = 1) -> dict:
    from gguf import GGUFReader

    from quantir.runtime.gguf import open_gguf

    result: dict = {"file": str(path), "file_bytes": path.stat().st_size}
    result["open_s"] = _best(lambda: open_gguf(path), repeats)
    result["open_peak_bytes"] = _peak_bytes(lambda: open_gguf(path))
    result["ggufpy_open_s"] = _best(lambda: GGUFReader(path), max(1, repeats // 2))
    result["ggufpy_open_peak_bytes"] = _peak_bytes(lambda: GGUFReader(path))
    model = open_gguf(path)
    result["header_bytes"] = model.data_offset
    matrices = quantized_matrices(model)
    if not matrices:
        raise SystemExit(f"{path}: no 2-D quantized matrix of a supported encoding")
    unique = distinct(matrices)
    result["ops"], result["distinct_ops"] = len(matrices), len(unique)
    graph, ks = build_graph("model", matrices)
    unique_graph, _ = build_graph("distinct", unique)

    # Distinct ops and the full graph alternate, so that both see the same
    # load on a shared machine; each measure is the best of the rounds and
    # the ratio the median of the rounds' ratios.
    rounds: list[tuple[float, float, float, float]] = []
    for _ in range(max(1, compile_repeats)):
        with _empty_cache():
            distinct_s = _timed_compile(unique_graph)[1]
            _forget_compiled()  # a new process with the distinct ops' kernels on disk
            known_s = _timed_compile(graph)[1]
        with _empty_cache():
            cold_s = _timed_compile(graph)[1]
            _forget_compiled()  # warm: a new process finding every kernel on disk
            compiled, warm_s = _timed_compile(graph)
        rounds.append((distinct_s, cold_s, warm_s, known_s))
    result["cold_distinct_s"] = min(r[0] for r in rounds)
    result["cold_s"] = min(r[1] for r in rounds)
    result["warm_s"] = min(r[2] for r in rounds)
    result["known_kernels_s"] = min(r[3] for r in rounds)
    result["ratio_cold_rounds"] = [r[1] / r[0] for r in rounds]

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, k)).astype(np.float32) for k in ks]
    compiled(*inputs, weights=model)  # first call binds the weights
    result["run_s"] = _best(lambda: compiled(*inputs, weights=model), repeats)
    result["ratio_open"] = result["ggufpy_open_s"] / result["open_s"]
    result["ratio_cold"] = float(np.median(result["ratio_cold_rounds"]))
    embedding = quantized_embedding(matrices)
    if embedding is not None:
        ids = rng.integers(0, embedding.shape[0], GATHER_IDS).astype(np.int32)
        result.update(_measure_gather(model, matrices, embedding, [*inputs, ids], repeats))
    return result


GATHER_IDS = 8
"""Token ids the gather graph is run with."""


def _measure_gather(model, matrices: list, embedding, inputs: list, repeats: int) -> dict:
    """Cold and warm compile and run of the full graph plus a gather on the embedding."""
    graph, _ = build_graph("model_gather", matrices, embedding)
    out: dict = {"gather_table": embedding.name, "gather_encoding": embedding.encoding.name}
    with _empty_cache():
        out["gather_cold_s"] = _timed_compile(graph)[1]
        _forget_compiled()
        compiled, out["gather_warm_s"] = _timed_compile(graph)
    compiled(*inputs, weights=model)
    out["gather_run_s"] = _best(lambda: compiled(*inputs, weights=model), repeats)
    return out


def format_row(r: dict) -> str:
    mib = 1 << 20
    return (
        f"{Path(r['file']).name}: {r['file_bytes'] / mib:.1f} MiB, header "
        f"{r['header_bytes'] / mib:.2f} MiB, {r['ops']} ops ({r['distinct_ops']} distinct)\n"
        f"  open        {r['open_s'] * 1e3:9.2f} ms  (gguf-py {r['ggufpy_open_s'] * 1e3:.1f} ms, "
        f"{r['ratio_open']:.0f}x; peak {r['open_peak_bytes'] / mib:.2f} MiB vs "
        f"{r['ggufpy_open_peak_bytes'] / mib:.1f} MiB)\n"
        f"  cold        {r['cold_s']:9.2f} s   (distinct ops alone {r['cold_distinct_s']:.2f} s, "
        f"{r['ratio_cold']:.2f}x; per round "
        f"{', '.join(f'{x:.2f}' for x in r['ratio_cold_rounds'])})\n"
        f"  warm        {r['warm_s'] * 1e3:9.1f} ms\n"
        f"  known kernels {r['known_kernels_s']:7.2f} s   (a new graph of cached kernels)\n"
        f"  run (m=1)   {r['run_s'] * 1e3:9.2f} ms"
    ) + _gather_row(r)


def _gather_row(r: dict) -> str:
    if "gather_cold_s" not in r:
        return "\n  gather      (no quantized token_embd.weight)"
    return (
        f"\n  + gather of {GATHER_IDS} ids from {r['gather_table']} ({r['gather_encoding']}): "
        f"cold {r['gather_cold_s']:.2f} s, warm {r['gather_warm_s'] * 1e3:.1f} ms, "
        f"run (m=1) {r['gather_run_s'] * 1e3:.2f} ms"
    )


LAYOUTS = ("llama", "gemma-3-270m")
"""Synthetic file layouts (`--like`)."""


def write_synthetic(
    path: Path, vocab: int, layers: int, dim: int = 512, ffn: int = 1536, like: str = "llama"
) -> None:
    """A model-like file: a `vocab`-token tokenizer, `layers` blocks of quantized matrices.

    `like="llama"`: blocks of Q4_K/Q6_K matrices of width `dim` and `ffn`, a
    Q4_K token embedding. `like="gemma-3-270m"`: gemma-3-270M's shapes (width
    640, 4 query heads and 1 key/value head of 256, ffn 2048; `dim` and `ffn`
    are ignored) with the types llama.cpp's Q4_K_M gives them: a width of 640
    is no multiple of 256, so the matrices that K-quants cannot take fall back
    (Q4_K to Q5_0, Q6_K to Q8_0) and only attn_output and ffn_down stay K-quants
    (Q6_K on the layers llama.cpp gives more bits, else Q4_K); the tied token
    embedding is Q6_K, so Q8_0.
    """
    from gguf import GGUFValueType as V

    from quantir.dialects.encoding import QuantizationEncoding as E
    from quantir.runtime.gguf import MetadataValue, TensorToWrite, write_gguf

    if like not in LAYOUTS:
        raise ValueError(f"like must be one of {LAYOUTS}, got {like!r}")
    rng = np.random.default_rng(0)

    def blocks(encoding, n: int, k: int):
        # Random codes with fp16 scales of 0: valid blocks, cheap to make.
        row = k // encoding.elements_per_block * encoding.block_size
        data = rng.integers(0, 256, size=(n, row), dtype=np.uint8)
        return data

    def matrix(name: str, encoding, n: int, k: int) -> TensorToWrite:
        return TensorToWrite(
            name, encoding, (n, k), lambda: _zero_scales(encoding, blocks(encoding, n, k))
        )

    if like == "gemma-3-270m":
        dim, ffn, q_dim, kv_dim = 640, 2048, 1024, 256
        tensors = [matrix("token_embd.weight", E.Q8_0, vocab, dim)]
    else:
        q_dim, kv_dim = dim, dim // 4
        tensors = [matrix("token_embd.weight", E.Q4_K, vocab, dim)]
    for b in range(layers):
        p = f"blk.{b}."
        if like == "gemma-3-270m":
            more = _more_bits(b, layers)
            tensors += [
                matrix(p + "attn_q.weight", E.Q5_0, q_dim, dim),
                matrix(p + "attn_k.weight", E.Q5_0, kv_dim, dim),
                matrix(p + "attn_v.weight", E.Q8_0 if more else E.Q5_0, kv_dim, dim),
                matrix(p + "attn_output.weight", E.Q4_K, dim, q_dim),
                matrix(p + "ffn_gate.weight", E.Q5_0, ffn, dim),
                matrix(p + "ffn_up.weight", E.Q5_0, ffn, dim),
                matrix(p + "ffn_down.weight", E.Q6_K if more else E.Q4_K, dim, ffn),
            ]
        else:
            tensors += [
                matrix(p + "attn_q.weight", E.Q4_K, q_dim, dim),
                matrix(p + "attn_k.weight", E.Q4_K, kv_dim, dim),
                matrix(p + "attn_v.weight", E.Q6_K, kv_dim, dim),
                matrix(p + "attn_output.weight", E.Q4_K, dim, q_dim),
                matrix(p + "ffn_gate.weight", E.Q4_K, ffn, dim),
                matrix(p + "ffn_up.weight", E.Q4_K, ffn, dim),
                matrix(p + "ffn_down.weight", E.Q6_K, dim, ffn),
            ]
        tensors.append(
            TensorToWrite(p + "attn_norm.weight", np.float32, (dim,), np.ones(dim, np.float32))
        )
    tokens = [f"<tok{i}>" if i % 7 else f"\u2581word{i}" for i in range(vocab)]
    metadata = {
        "llama.block_count": layers,
        "llama.embedding_length": dim,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": MetadataValue(
            [float(-i) for i in range(vocab)], V.ARRAY, V.FLOAT32
        ),
        "tokenizer.ggml.token_type": MetadataValue([1] * vocab, V.ARRAY, V.INT32),
    }
    write_gguf(path, tensors, metadata, arch="llama")


def _more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's `use_more_bits`: the layers Q4_K_M gives attn_v and ffn_down Q6_K."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def _zero_scales(encoding, data: np.ndarray) -> np.ndarray:
    from quantir.compiler.encodings import layout_for

    n = data.shape[0]
    view = data.reshape(-1, encoding.block_size)
    for offset in layout_for(encoding).fp16_fields.values():
        view[:, offset : offset + 2] = 0
    return view.reshape(n, -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="a GGUF file to measure")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--compile-repeats",
        type=int,
        default=1,
        help="rounds of cold (distinct, full), warm and known-kernel compiles",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (best of)")
    parser.add_argument("--write-synthetic", metavar="OUT", help="write a synthetic GGUF file")
    parser.add_argument("--vocab", type=int, default=262144, help="synthetic vocabulary size")
    parser.add_argument("--layers", type=int, default=18, help="synthetic block count")
    parser.add_argument(
        "--like",
        choices=LAYOUTS,
        default="llama",
        help="synthetic layout: llama-like Q4_K/Q6_K, or gemma-3-270M's shapes and Q4_K_M types",
    )
    args = parser.parse_args(argv)
    if args.write_synthetic:
        start = time.perf_counter()
        write_synthetic(Path(args.write_synthetic), args.vocab, args.layers, like=args.like)
        print(f"wrote {args.write_synthetic} in {time.perf_counter() - start:.1f} s")
        if not args.file:
            return 0
    if not args.file:
        parser.error("give a GGUF file (or --write-synthetic OUT)")
    result = measure(Path(args.file), args.repeats, args.compile_repeats)
    print(json.dumps(result, indent=2) if args.json else format_row(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
