"""`--version` on every command, and `quantir encodings` against gguf-py's block sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from quantir.dialects.encoding import QuantizationEncoding


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "prog,module",
    [
        ("quantir-opt", "quantir.compiler.tools.quantir_opt"),
        ("quantir-run", "quantir.runtime.tools.quantir_run"),
        ("quantir", "quantir.runtime.cli"),
    ],
)
def test_version(prog: str, module: str) -> None:
    result = run_module(module, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{prog} {version('quantir')} (xdsl {version('xdsl')})\n"


def test_encodings_lists_every_encoding_with_gguf_py_block_sizes() -> None:
    result = run_module("quantir.runtime.cli", "encodings", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["encoding"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {e.name for e in QuantizationEncoding}
    for name, row in rows.items():
        if name == "gptq":
            assert row["format"] == "GPTQ" and "2/3/4/8" in row["bits_per_weight"]
            continue
        weights, nbytes = GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]]
        assert (row["weights_per_block"], row["bytes_per_block"]) == (weights, nbytes), name
        assert row["bits_per_weight"] == nbytes * 8 / weights


def test_encodings_table() -> None:
    result = run_module("quantir.runtime.cli", "encodings")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ENCODING", "FORMAT", "WEIGHTS/BLOCK", "BYTES/BLOCK", "BITS/WEIGHT"]
    assert next(ln for ln in lines if ln.startswith("q4_k ")).split() == [
        "q4_k",
        "GGUF",
        "256",
        "144",
        "4.5",
    ]
    assert len(lines) == 1 + len(QuantizationEncoding)
