"""quantir-opt's behaviour on user errors, --version and --help.

A user error (a file that does not parse or verify, an unknown pass, a
missing file) is one message on stderr and exit status 1, never a Python
traceback. The tool runs in a subprocess, as users run it.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

MODULE = "quantir.compiler.tools.quantir_opt"

VALID = """\
func.func @linear(%x: tensor<?x512xf32>) -> tensor<?x8xf32> {
  %w = quant.weight "linear.weight" #quant.encoding<q4_k> [8, 512] : tensor<8x288xui8>
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w
      : (tensor<?x512xf32>, tensor<8x288xui8>) -> tensor<?x8xf32>
  func.return %y : tensor<?x8xf32>
}
"""

# Line 3, column 3 is the `%w = quant.weight` of a packed shape that does not
# fit the encoding (q4_k rows of 512 weights are 288 bytes).
INVALID_SHAPE = """\
func.func @linear() {
  // the weight below has the wrong byte count
  %w = quant.weight "linear.weight" #quant.encoding<q4_k> [8, 512] : tensor<8x290xui8>
  func.return
}
"""
SHAPE_MESSAGE = (
    'quant.weight "linear.weight": q4_k packed bytes for a 8x512 weight must be 8x288 '
    "(2 block(s) of 144 bytes per row), got 8x290"
)


def run_opt(*args: str, cwd: Path | None = None, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=120,
    )


def assert_user_error(result: subprocess.CompletedProcess) -> None:
    """Exit status 1, a message on stderr, no traceback anywhere."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.strip(), "the error message goes to stderr"
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def error_line(stderr: str) -> str:
    """The first line of stderr without the tool-name prefix (`quantir-opt: `)."""
    first = stderr.strip().splitlines()[0]
    return first.removeprefix("quantir-opt: ")


def test_valid_file_prints_the_module(tmp_path: Path) -> None:
    src = tmp_path / "ok.mlir"
    src.write_text(VALID)
    result = run_opt(str(src))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert 'quant.weight "linear.weight" #quant.encoding<q4_k> [8, 512]' in result.stdout


def test_verifier_failure_points_at_the_op(tmp_path: Path) -> None:
    src = tmp_path / "bad_shape.mlir"
    src.write_text(INVALID_SHAPE)
    result = run_opt(str(src))
    assert_user_error(result)
    assert error_line(result.stderr) == f"{src}:3:3: error: {SHAPE_MESSAGE}"
    assert result.stdout == ""


def test_verifier_failure_in_a_later_chunk_has_its_file_line(tmp_path: Path) -> None:
    # --split-input-file: the location is a line of the whole file.
    src = tmp_path / "chunks.mlir"
    src.write_text(VALID + "\n// -----\n" + INVALID_SHAPE)
    result = run_opt(str(src), "--split-input-file")
    assert_user_error(result)
    bad_line = (VALID + "\n// -----\n").count("\n") + 3
    assert error_line(result.stderr) == f"{src}:{bad_line}:3: error: {SHAPE_MESSAGE}"


def test_verifier_failure_from_stdin_is_located_in_stdin() -> None:
    result = run_opt(stdin=INVALID_SHAPE)
    assert_user_error(result)
    assert error_line(result.stderr) == f"stdin:3:3: error: {SHAPE_MESSAGE}"


def test_parse_error_names_file_line_column_and_problem(tmp_path: Path) -> None:
    src = tmp_path / "bad_syntax.mlir"
    src.write_text(VALID.replace("<q4_k> [8, 512]", "<q4_q> [8, 512]"))
    result = run_opt(str(src))
    assert_user_error(result)
    col = src.read_text().splitlines()[1].index("q4_q") + 1
    assert f"{src}:2:{col}" in result.stderr
    assert "Expected `q4_0`, `q4_k`" in result.stderr
    assert result.stdout == ""


def test_parse_error_of_a_dialect_attribute_points_at_the_value(tmp_path: Path) -> None:
    src = tmp_path / "bad_bits.mlir"
    src.write_text(
        "func.func @f() {\n"
        '  %q:4 = quant.weight "w" #quant.encoding<gptq> [64, 256] config '
        "#quant.gptq<bits = 5, group_size = 64, desc_act = false, sym = true> : "
        "tensor<32x64xi32>, tensor<4x8xi32>, tensor<4x64xf16>, tensor<256xi32>\n"
        "  func.return\n}\n"
    )
    result = run_opt(str(src))
    assert_user_error(result)
    col = src.read_text().splitlines()[1].index("5, group_size") + 1
    assert f"{src}:2:{col}" in result.stderr
    assert "#quant.gptq bits must be one of [2, 3, 4, 8], got 5" in result.stderr


def test_unknown_pass_is_named(tmp_path: Path) -> None:
    src = tmp_path / "ok.mlir"
    src.write_text(VALID)
    result = run_opt(str(src), "-p", "lower-quant-to-everything")
    assert_user_error(result)
    assert "lower-quant-to-everything" in result.stderr
    assert result.stdout == ""


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.mlir"
    result = run_opt(str(missing))
    assert_user_error(result)
    assert str(missing) in result.stderr
    assert "no such file" in result.stderr


def test_directory_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.mlir"
    folder.mkdir()
    result = run_opt(str(folder))
    assert_user_error(result)
    assert str(folder) in result.stderr


def test_unknown_target_is_a_usage_error(tmp_path: Path) -> None:
    # argparse's convention for usage errors: status 2 and the choices.
    src = tmp_path / "ok.mlir"
    src.write_text(VALID)
    result = run_opt(str(src), "-t", "no-such-target")
    assert result.returncode == 2, result.stderr
    assert "no-such-target" in result.stderr
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run_opt("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"quantir-opt {version('quantir')} (xdsl {version('xdsl')})\n"


def test_list_passes_shows_quantir_passes_and_pipelines() -> None:
    result = run_opt("--list-passes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    summary = {
        ln.split()[0]: ln.split(None, 1)[1]
        for ln in lines
        if ln.startswith("  ") and not ln.startswith("   ")
    }
    assert summary["lower-quant-to-loops"].startswith("Expand quant ops on buffers")
    assert summary["quantir-cpu"].startswith("The CPU default")
    for name in (
        "quantir-bufferize",
        "lower-qnn-to-loops",
        "outline-kernels",
        "share-launches",
        "hoist-loop-constants",
        "gpu-map-kernels",
        "quantir-cpu-exact",
        "quantir-cpu-scalar",
        "quantir-gpu",
    ):
        assert summary[name], name
    assert "canonicalize" not in summary  # xDSL's passes stay in --help
    # Each pipeline's passes follow its summary.
    cpu = lines.index(next(ln for ln in lines if ln.startswith("  quantir-cpu ")))
    expected = "quantir-bufferize,lower-quant-to-loops{int8=true amx=auto outline=true}"
    assert lines[cpu + 1].strip().startswith(expected)


@pytest.mark.parametrize(
    "pipeline,target,marker",
    [
        ("quantir-cpu", "llvm", "define void @"),
        ("quantir-cpu", "quantir-llvm", "define void @"),
        ("quantir-gpu", "ptx", ".entry "),
        ("quantir-gpu", "quantir-ptx", ".entry "),
    ],
)
def test_targets_print_llvm_ir_and_ptx(tmp_path: Path, pipeline, target, marker) -> None:
    src = tmp_path / "linear.mlir"
    src.write_text(VALID)
    result = run_opt(str(src), "-p", pipeline, "-t", target)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_help_lists_quantir_passes_and_targets() -> None:
    result = run_opt("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    # argparse wraps the comma-separated lists anywhere, even at a hyphen.
    text = "".join(line.strip() for line in result.stdout.splitlines())
    passes = text.split("Available passes are:")[1].split("--")[0].split(",")
    for name in (
        "quantir-bufferize",
        "lower-quant-to-loops",
        "lower-qnn-to-loops",
        "outline-kernels",
        "share-launches",
        "hoist-loop-constants",
        "quantir-cpu",
        "quantir-gpu",
        "canonicalize",
    ):
        assert name in passes, name
    targets = text.split("Available targets are:")[1].split("-o OUTPUT_FILE")[0].split(",")
    for name in ("llvm", "ptx", "mlir"):
        assert name in targets, name


def test_console_script_behaves_like_the_module(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "quantir-opt"
    if not script.exists():
        pytest.skip("quantir-opt console script not installed next to this Python")
    src = tmp_path / "bad_shape.mlir"
    src.write_text(INVALID_SHAPE)
    result = subprocess.run([str(script), str(src)], capture_output=True, text=True, timeout=120)
    assert_user_error(result)
    assert error_line(result.stderr) == f"{src}:3:3: error: {SHAPE_MESSAGE}"
