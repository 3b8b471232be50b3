"""The examples/ folder: the README's quantir-run command and build_graph.py."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from xdsl.printer import Printer

from quantir.compiler.context import make_context
from quantir.compiler.diagnostics import parse_located
from quantir.runtime import compile_graph
from quantir.runtime.gguf import open_gguf
from quantir.runtime.tools.quantir_run import main as quantir_run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GRAPH = EXAMPLES / "tiny_mlp.mlir"
MODEL = EXAMPLES / "tiny-llama-q4_k_m.gguf"
X = EXAMPLES / "x.npy"
# The README's command, run from the repository root.
COMMAND = [
    "examples/tiny_mlp.mlir",
    "--weights",
    "examples/tiny-llama-q4_k_m.gguf",
    "--input",
    "x=examples/x.npy",
    "--time",
]


def reference(x: np.ndarray) -> np.ndarray:
    """tiny_mlp.mlir in float64 numpy, on weights dequantized by gguf-py."""
    model = open_gguf(MODEL)

    def w(name: str) -> np.ndarray:
        t = model.tensor(name)
        if t.encoding is None:
            return np.asarray(t.data, dtype=np.float64)
        packed = np.asarray(t.data)
        return gguf_dequantize(packed, GGMLQuantizationType[t.type_name]).astype(np.float64)

    x = x.astype(np.float64)
    for block in (0, 1):
        p = f"blk.{block}."
        xn = x * w(p + "ffn_norm.weight")
        h = (xn @ w(p + "ffn_gate.weight").T) * (xn @ w(p + "ffn_up.weight").T)
        x = x + h @ w(p + "ffn_down.weight").T
    return (x * w("output_norm.weight")) @ w("output.weight").T


def test_example_uses_every_quantized_type_of_the_model():
    text = GRAPH.read_text()
    for encoding in ("q4_k", "q6_k", "q5_0", "q8_0"):
        assert f"#quant.encoding<{encoding}>" in text
    # The copy in examples/ is the test model, byte for byte.
    data = ROOT / "tests" / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"
    assert MODEL.read_bytes() == data.read_bytes()


def test_readme_command_computes_the_reference(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "logits.npy"
    assert quantir_run([*COMMAND, "--output", str(out)]) == 0, capsys.readouterr().err
    y = np.load(out)
    assert y.shape == (4, 32) and y.dtype == np.float32
    ref = reference(np.load(X))
    # The default CPU path quantizes x to int8 blocks: about 5e-3 normwise per
    # matmul (tests/runtime/test_kernels_int8.py), five chained matmuls here.
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 2e-2
    # --exact: float32 sums of 256-288 products of O(1) values, five chained matmuls.
    assert quantir_run([*COMMAND, "--exact", "--output", str(out)]) == 0
    y = np.load(out)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    assert np.abs(y - ref).max() < 1e-4 * np.abs(ref).max()


def test_readme_command_as_a_subprocess():
    script = Path(sys.executable).parent / "quantir-run"
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-m", "quantir.runtime.tools.quantir_run"]
    )
    result = subprocess.run(
        [*command, *COMMAND],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("result0: float32 [4, 32]  min ")
    assert any(ln.startswith("compile: ") for ln in lines)
    assert any(ln.startswith("run: ") for ln in lines)
    ref = reference(np.load(X))
    assert f"{ref.min():.4f}"[:5] in lines[0]  # the printed minimum is the reference's


def _load_build_graph():
    spec = importlib.util.spec_from_file_location(
        "quantir_example_build_graph", EXAMPLES / "build_graph.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _canonical(text: str) -> str:
    module = parse_located(make_context(), text, "<text>")
    module.verify()
    for op in module.walk():
        for result in op.results:
            result.name_hint = None
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def test_build_graph_builds_the_example_file():
    example = _load_build_graph()
    assert _canonical(example.build_tiny_mlp().to_mlir()) == _canonical(GRAPH.read_text())


@pytest.mark.parametrize("argv", [["--threads", "2"], ["--exact"]])
def test_build_graph_script_agrees_with_eager_api_and_numpy(tmp_path, argv):
    example = _load_build_graph()
    saved = tmp_path / "built.mlir"
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        code = example.main([*argv, "--save-ir", str(saved)])
    text = stdout.getvalue()
    assert code == 0, text
    assert "OK: the graph, the eager API and the numpy reference agree" in text
    assert _canonical(saved.read_text()) == _canonical(GRAPH.read_text())


def _gpu_available() -> bool:
    try:
        from quantir.runtime import cuda
    except ImportError:
        return False
    return cuda.available()


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_available(), reason="no NVIDIA GPU / CUDA driver")
def test_readme_command_on_the_gpu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "logits.npy"
    code = quantir_run([*COMMAND, "--device", "cuda:0", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_allclose(np.load(out), reference(np.load(X)), rtol=1e-4, atol=1e-4)
    # The builder's compiled graph on the GPU, with weights bound from the file.
    example = _load_build_graph()
    compiled = compile_graph(example.build_tiny_mlp(), device="cuda:0")
    (y,) = compiled(np.load(X), weights=open_gguf(MODEL))
    np.testing.assert_allclose(y, np.load(out), rtol=1e-5, atol=1e-5)
