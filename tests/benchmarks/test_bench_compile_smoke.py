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


def test_gemma_like_synthetic_file_has_gemma_shapes_and_q4_k_m_types(bench, tmp_path):
    from quantir.runtime.gguf import open_gguf

    path = tmp_path / "gemma.gguf"
    bench.write_synthetic(path, vocab=2048, layers=2, like="gemma-3-270m")
    matrices = bench.quantized_matrices(open_gguf(path))
    kinds = {t.name: (t.encoding.name.lower(), tuple(t.shape)) for t in matrices}
    assert kinds["token_embd.weight"] == ("q8_0", (2048, 640))
    assert kinds["blk.0.attn_q.weight"] == ("q5_0", (1024, 640))
    assert kinds["blk.0.attn_output.weight"] == ("q4_k", (640, 1024))
    # llama.cpp's use_more_bits gives the last layer of two Q6_K (here: Q8_0 for attn_v).
    assert kinds["blk.0.attn_v.weight"] == ("q5_0", (256, 640))
    assert kinds["blk.1.attn_v.weight"] == ("q8_0", (256, 640))
    assert kinds["blk.0.ffn_down.weight"] == ("q4_k", (640, 2048))
    assert kinds["blk.1.ffn_down.weight"] == ("q6_k", (640, 2048))
    assert len(matrices) == 15 and len(bench.distinct(matrices)) == 8
