"""benchmarks/bench_compile.py on a small synthetic file: it measures what it says."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_compile")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_synthetic_file_graph_and_measurements(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "synthetic.gguf"
    bench.write_synthetic(path, vocab=2048, layers=2)
    result = bench.measure(path, repeats=1)
    # token_embd plus 7 matrices per block; 6 distinct (encoding, shape) pairs.
    assert result["ops"] == 1 + 2 * 7 and result["distinct_ops"] == 6
    assert result["header_bytes"] > 2048 * 8  # the vocabulary is in the header
    timings = ("open_s", "ggufpy_open_s", "cold_s", "cold_distinct_s", "warm_s", "run_s")
    for key in (*timings, "known_kernels_s"):
        assert result[key] > 0, key
    assert result["warm_s"] < result["cold_s"]
    # The same graph plus a gather on the Q4_K token embedding.
    assert (result["gather_table"], result["gather_encoding"]) == ("token_embd.weight", "q4_k")
    for key in ("gather_cold_s", "gather_warm_s", "gather_run_s"):
        assert result[key] > 0, key
    assert "known kernels" in bench.format_row(result)
    row = bench.format_row(result)
    assert "15 ops (6 distinct)" in row and "gguf-py" in row
    assert "+ gather of 8 ids from token_embd.weight (q4_k): cold" in row
