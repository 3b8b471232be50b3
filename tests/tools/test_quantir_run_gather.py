"""`quantir-run` on a graph with quant.gather: token ids from .npy files.

The ids input takes integer .npy files of the declared dtype; other dtypes
and out-of-range or negative ids are one-line errors with exit status 1 and
no traceback (the ids are checked before any kernel runs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from quantir.runtime.gguf import open_gguf
from quantir.runtime.tools.quantir_run import main

TESTS = Path(__file__).resolve().parents[1]
MODEL = TESTS / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"
EMBED = Path(__file__).resolve().parent / "data" / "embed.mlir"


def table(name: str, kind: GGMLQuantizationType) -> np.ndarray:
    return gguf_dequantize(np.asarray(open_gguf(MODEL).tensor(name).data), kind)


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ids_from_npy_give_embeddings_and_logits(tmp_path, capsys):
    ids = np.array([3, 0, 31, 3, 17], np.int32)
    np.save(tmp_path / "ids.npy", ids)
    out = tmp_path / "out"
    code, stdout, err = run(
        [EMBED, "--weights", MODEL, "--input", f"ids={tmp_path / 'ids.npy'}"]
        + ["--output-dir", out, "--exact"],
        capsys,
    )
    assert code == 0, err
    x, y = np.load(out / "result0.npy"), np.load(out / "result1.npy")
    embd = table("token_embd.weight", GGMLQuantizationType.Q4_K)
    np.testing.assert_array_equal(x.view(np.uint32), embd[ids].view(np.uint32))
    head = table("output.weight", GGMLQuantizationType.Q6_K)
    ref = embd[ids].astype(np.float64) @ head.T.astype(np.float64)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "ids,expected",
    [
        (
            np.array([3, 0], np.int64),
            "is int64 [2] but the graph declares int32 [?] (convert it with .astype(np.int32))",
        ),
        (
            np.array([3.0, 0.0]),
            "is float64 [2] but the graph declares int32 [?] (convert it with .astype(np.int32))",
        ),
        (np.array([[3], [1]], np.int32), "is int32 [2, 1] but the graph declares int32 [?]"),
        (
            np.array([3, 32], np.int32),
            "@embed input ids: index 32 at position 1 is past the last row (31); indices must "
            "be in [0, 32) for the 32 rows of weight 'token_embd.weight'",
        ),
        (np.array([-5], np.int32), "@embed input ids: index -5 at position 0 is negative"),
    ],
)
def test_bad_ids_are_one_line_errors(tmp_path, capsys, ids, expected):
    np.save(tmp_path / "ids.npy", ids)
    code, out, err = run(
        [EMBED, "--weights", MODEL, "--input", f"ids={tmp_path / 'ids.npy'}"], capsys
    )
    assert code == 1, (out, err)
    assert err.startswith("quantir-run: error: ") and err.count("\n") == 1, err
    assert expected in err


def test_random_ids_are_refused(capsys):
    code, _, err = run([EMBED, "--weights", MODEL, "--input", "ids=random:4"], capsys)
    assert code == 1
    assert "random data is float32, but the graph declares int32 [?]" in err


def test_subprocess_exit_status_without_traceback(tmp_path):
    np.save(tmp_path / "ids.npy", np.array([40], np.int32))
    result = subprocess.run(
        [sys.executable, "-m", "quantir.runtime.tools.quantir_run", str(EMBED)]
        + ["--weights", str(MODEL), "--input", f"ids={tmp_path / 'ids.npy'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "index 40 at position 0 is past the last row (31)" in result.stderr
