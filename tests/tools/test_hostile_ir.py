"""IR text that used to hang, crash or slip past the verifier (issue 10, defects 3, 5, 6, 7).

Each case runs quantir-opt and quantir-run in a subprocess with a timeout, as
users run them, and expects a located one-line error with exit status 1:
never a hang, a RecursionError traceback or an "internal error".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GPTQ_GRAPH = Path(__file__).resolve().parent / "data" / "gptq_linear.mlir"

# xDSL's string regex backtracks exponentially when the closing quote is
# missing: 40 characters after it would take hours there.
UNTERMINATED = 'func.func @f() {\n  "test.op"() {a = "' + "x" * 40 + "\n}\n"
DEEP_ARRAY = "module attributes {x = " + "[" * 200 + "1" + "]" * 200 + "} {}\n"
DEEP_DICT = "module attributes {x = " + "{a = " * 150 + "1" + "}" * 150 + "} {}\n"
DEEP_TYPE = "func.func private @f() -> " + "tuple<" * 300 + "f32" + ">" * 300 + "\n"
USE_BEFORE_DEF = """\
func.func @f(%a: f32) -> f32 {
  %c = arith.addf %b, %a : f32
  %b = arith.addf %a, %a : f32
  func.return %c : f32
}
"""
USE_IN_REGION_BEFORE_DEF = """\
func.func @f(%n: index) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %n step %c1 {
    %w = arith.addf %v, %v : f32
  }
  %v = arith.constant 1.0 : f32
  func.return %v : f32
}
"""


def _run(module: str, args: list[str], path: Path, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", module, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_located_error(result, path: Path, prog: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "RecursionError" not in result.stderr
    assert str(path) in result.stderr, result.stderr
    return result.stderr


OPT = "quantir.compiler.tools.quantir_opt"
RUN = "quantir.runtime.tools.quantir_run"


@pytest.mark.parametrize(
    "text, expected",
    [
        (UNTERMINATED, ":2:20: string literal is not closed"),
        (DEEP_ARRAY, "nesting deeper than 64 levels"),
        (DEEP_DICT, "nesting deeper than 64 levels"),
        (DEEP_TYPE, "nesting deeper than 64 levels"),
        (USE_BEFORE_DEF, ":2:3: operand #0 (%b) of 'arith.addf' does not dominate"),
        (
            USE_IN_REGION_BEFORE_DEF,
            ":5:5: operand #0 (%v) of 'arith.addf' does not dominate",
        ),
    ],
    ids=[
        "unterminated-string",
        "deep-array",
        "deep-dict",
        "deep-type",
        "use-before-def",
        "use-in-region-before-def",
    ],
)
@pytest.mark.parametrize("module", [OPT, RUN])
def test_hostile_ir_is_a_located_error(tmp_path, module, text, expected):
    path = tmp_path / "in.mlir"
    path.write_text(text)
    args = ["-p", "quantir-cpu"] if module == OPT else []
    stderr = _assert_located_error(_run(module, args, path, timeout=30), path, module)
    assert expected in stderr.replace(": error: ", ": "), stderr


@pytest.mark.parametrize("module", [OPT, RUN])
@pytest.mark.parametrize("part", ["qweight", "qzeros", "g_idx"])
def test_signed_gptq_operands_are_refused_by_the_verifier(tmp_path, module, part):
    shapes = {"qweight": "32x64", "qzeros": "4x8", "g_idx": "256"}
    text = GPTQ_GRAPH.read_text().replace(
        f"tensor<{shapes[part]}xi32>", f"tensor<{shapes[part]}xsi32>"
    )
    path = tmp_path / "si32.mlir"
    path.write_text(text)
    args = ["-p", "quantir-cpu"] if module == OPT else ["--input", "x=random:1x256"]
    stderr = _assert_located_error(_run(module, args, path), path, module)
    assert f"GPTQ {part} must have element type i32, got si32" in stderr
