"""How every command ends when the run is cut short (issue 10).

quantir-opt, quantir-run and quantir: Ctrl-C is exit status 130 with one
line and no partial output file; a reader that closes the pipe (``| head``)
is not an error and prints no traceback; running out of memory and input
nested too deeply are one-line errors with status 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantir.compiler.tools import quantir_opt
from quantir.runtime import cli
from quantir.runtime.tools import quantir_run

TESTS = Path(__file__).resolve().parents[1]
GPTQ_GRAPH = TESTS / "tools" / "data" / "gptq_linear.mlir"
MODEL = TESTS / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"


def _copy_graph(tmp_path: Path) -> Path:
    graph = tmp_path / "copy.mlir"
    graph.write_text(
        "func.func @copy(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {\n"
        "  func.return %x : tensor<?x256xf32>\n}\n"
    )
    return graph


def _raise(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


ENDINGS = pytest.mark.parametrize(
    "error, status, message",
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (MemoryError(), 1, "out of memory"),
        (RecursionError(), 1, "nested too deeply"),
    ],
    ids=["interrupt", "memory", "recursion"],
)
"""How each command must end on these errors: exit status and message."""


def _assert_one_line(err: str, prog: str) -> None:
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err


@ENDINGS
def test_quantir_opt_endings(tmp_path, monkeypatch, capsys, error, status, message):
    out = tmp_path / "out.mlir"
    out.write_text("previous contents\n")
    monkeypatch.setattr(quantir_opt.QuantirOptMain, "apply_passes", _raise(error))
    code = quantir_opt.main([str(GPTQ_GRAPH), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == status, err
    _assert_one_line(err, "quantir-opt")
    assert message in err
    assert out.read_text() == "previous contents\n"  # not truncated, not half-written
    assert [p.name for p in tmp_path.iterdir()] == ["out.mlir"]  # no temporary left


def test_quantir_opt_output_file_is_written_on_success(tmp_path):
    out = tmp_path / "out.mlir"
    assert quantir_opt.main([str(GPTQ_GRAPH), "-o", str(out)]) == 0
    assert "func.func @gptq_linear" in out.read_text()


@ENDINGS
def test_quantir_run_and_quantir_endings(tmp_path, monkeypatch, capsys, error, status, message):
    out = tmp_path / "y.npy"
    monkeypatch.setattr(quantir_run, "compile_on_device", _raise(error))
    code = quantir_run.main(
        [str(_copy_graph(tmp_path)), "--input", "x=random:1x256", "--output", str(out)]
    )
    err = capsys.readouterr().err
    assert code == status, err
    _assert_one_line(err.strip(), "quantir-run")
    assert message in err and not out.exists()

    monkeypatch.setattr(cli, "_cmd_inspect", _raise(error))
    code = cli.main(["inspect", str(MODEL)])
    err = capsys.readouterr().err
    assert code == status, err
    _assert_one_line(err.strip(), "quantir")
    assert message in err


def test_absurd_input_size_is_out_of_memory(capsys):
    code = quantir_run.main([str(GPTQ_GRAPH), "--input", "x=random:100000000000x256"])
    err = capsys.readouterr().err
    assert code == 1, err
    _assert_one_line(err, "quantir-run")


def _piped_to_head(argv: list[str]) -> subprocess.CompletedProcess:
    """Run a command with stdout read by `head -n 1`, which exits at once."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head` does
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, b"", err)


@pytest.mark.parametrize("which", ["quantir-opt", "quantir-run", "quantir"])
def test_closed_pipe_is_not_an_error(tmp_path, which):
    if which == "quantir-opt":
        big = tmp_path / "big.mlir"
        big.write_text("// -----\n".join([GPTQ_GRAPH.read_text()] * 400))
        argv = ["-m", "quantir.compiler.tools.quantir_opt", str(big), "--split-input-file"]
    elif which == "quantir-run":
        graph = tmp_path / "copy.mlir"
        graph.write_text(
            "func.func @copy(%x: tensor<?x256xf32>) -> tensor<?x256xf32> {\n"
            "  func.return %x : tensor<?x256xf32>\n}\n"
        )
        argv = [
            "-m",
            "quantir.runtime.tools.quantir_run",
            str(graph),
            "--input",
            "x=random:4000x256",
            "--print-full",
        ]
    else:
        argv = ["-m", "quantir.runtime.cli", "inspect", str(MODEL), "--metadata"]
    result = _piped_to_head([sys.executable, *argv])
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
