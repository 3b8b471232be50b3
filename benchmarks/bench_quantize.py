"""Throughput of quantir.runtime.quantize.quantize, per encoding.

Prints elements/s of ``quantize`` on float32 normal data (4096x4096 by
default) and, for the 32-element formats, gguf-py's ``gguf.quants.quantize``
on the same array in the same run, their ratio, and whether the bytes agree.

    /work/venv/bin/python benchmarks/bench_quantize.py [--rows N] [--cols K]
        [--repeat R] [--encodings q4_k,q8_0,...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gguf
import numpy as np
from gguf.quants import quantize as gguf_quantize

from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.quantize import SUPPORTED_ENCODINGS, quantize


def best_seconds(run: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    """Fastest of ``repeat`` runs (the least disturbed by other load) and its result."""
    best = float("inf")
    result = np.empty(0)
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=4096, help="K; a multiple of 256")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--encodings",
        default=",".join(e.name for e in SUPPORTED_ENCODINGS),
        help="comma-separated encoding names",
    )
    args = parser.parse_args()
    encodings = [QuantizationEncoding.parse(name) for name in args.encodings.split(",")]

    weights = np.random.default_rng(0).standard_normal((args.rows, args.cols), dtype=np.float32)
    print(f"float32 normal weights {args.rows}x{args.cols}, best of {args.repeat}")
    print(f"{'encoding':8} {'quantir elem/s':>15} {'gguf-py elem/s':>15} {'ratio':>7}  bytes")
    for encoding in encodings:
        seconds, ours = best_seconds(lambda e=encoding: quantize(e, weights), args.repeat)
        line = f"{encoding.name:8} {weights.size / seconds:15.3e}"
        if encoding.elements_per_block == 32:
            ggml_type = gguf.GGMLQuantizationType[encoding.value]
            theirs_s, theirs = best_seconds(
                lambda t=ggml_type: gguf_quantize(weights, t), args.repeat
            )
            same = "identical" if np.array_equal(ours, theirs) else "DIFFERENT"
            line += f" {weights.size / theirs_s:15.3e} {theirs_s / seconds:7.2f}  {same}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
