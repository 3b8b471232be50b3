"""benchmarks/bench_ggml.py on its smallest cases: ggml and quantir agree.

Skipped without ggml-python (the `bench` extra: pip install -e '.[bench]').
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = {"n": 256, "k": 1024}  # whole blocks for every encoding, compiled in seconds


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("ggml", reason="needs ggml-python: pip install -e '.[bench]'")
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import their neighbours by name
    try:
        return importlib.import_module("bench_ggml")
    finally:
        sys.path.remove(str(BENCHMARKS))


def fast(bench):
    return bench.Settings(repeat=2, budget=0.01, rounds=1)


@pytest.mark.parametrize("encoding", ["q4_0", "q4_k"])
def test_quantir_agrees_with_ggml(bench, encoding: str) -> None:
    rng = np.random.default_rng(0)
    rows = bench.run_encoding(encoding, "cache", [1, 3], [1], fast(bench), rng, **TINY)
    assert [(r.m, r.threads) for r in rows] == [(1, 1), (3, 1)]
    for row in rows:
        assert not row.wrong, row.line()
        # ggml quantizes x to 8-bit blocks: about 1e-3..1e-2 off the exact product.
        assert row.err < 3e-2 and row.ggml_exact_err < 3e-2, row.line()
        assert row.quantir_exact_err < 3e-2, row.line()
        assert row.ggml_s > 0 and row.quantir_s > 0


def test_gptq_row_is_checked(bench) -> None:
    rng = np.random.default_rng(1)
    (row,) = bench.run_gptq("cache", [1], fast(bench), rng, **TINY)
    assert not row.wrong, row.line()
    assert row.gptq_exact_err < 3e-2 and row.q4_0_exact_err < 3e-2, row.line()


def test_a_wrong_result_is_flagged(bench) -> None:
    row = bench.MatmulRow("q4_0", 256, 1024, 1, 1, 0, 1e-3, 1e-4, 0.9, 0.9, 5e-3)
    assert row.wrong and row.verdict() == "WRONG"


def test_quick_subset(bench) -> None:
    args = bench.parse_args(["--quick", "--threads", "1"])
    assert args.encodings == ["q4_0", "q4_k", "gptq4"]
    assert args.m == [1, 16] and args.threads == [1] and args.shapes == "cache"


def test_a_stalled_ggml_pool_is_named(bench) -> None:
    def row(threads: int, ggml_s: float):
        return bench.MatmulRow("q8_0", 4096, 14336, 1, threads, 0, ggml_s, 5e-3, 0, 0, 0)

    assert bench.stalled_rows([row(1, 4e-3), row(2, 2e-3)]) == []
    assert bench.stalled_rows([row(1, 4e-3), row(2, 2e-2)]) == ["q8_0 N=4096,K=14336 M=1 threads=2"]
