"""`quantir-run`: compile a function of a graph file and run it on inputs and weight files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from quantir.compiler.tools.command import one_line
from quantir.runtime.gguf import open_gguf
from quantir.runtime.gptq import (
    dequantize_gptq_reference,
    quantize_gptq_rtn,
    save_gptq_checkpoint,
)
from quantir.runtime.tools.quantir_run import main

TESTS = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
MODEL = TESTS / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"
LINEAR = DATA / "linear_q6k.mlir"
GPTQ_GRAPH = DATA / "gptq_linear.mlir"
TWO = DATA / "two_functions.mlir"
LAYER = "model.layers.0.mlp.down_proj"


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_error(argv, capsys) -> str:
    """Run a failing command; check the one-line error contract; return the message.

    (A parse error that points into the source keeps its source and caret
    lines: test_parse_errors_keep_the_caret_lines.)
    """
    code, out, err = run(argv, capsys)
    assert code == 1, (code, out, err)
    assert err.startswith("quantir-run: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err[len("quantir-run: error: ") :].strip()


def weight_error(msg: str, graph: Path, name: str) -> str:
    """`msg` without its location, checked to be the `quant.weight "name"` op's line:col."""
    lines = Path(graph).read_text().splitlines()
    line = next(i for i, ln in enumerate(lines, 1) if f'quant.weight "{name}"' in ln)
    col = len(lines[line - 1]) - len(lines[line - 1].lstrip()) + 1
    prefix = f"{graph}:{line}:{col}: "
    assert msg.startswith(prefix), (msg, prefix)
    return msg[len(prefix) :]


def q6k_head() -> tuple[np.ndarray, np.ndarray]:
    """(packed bytes, float32 values) of the model's Q6_K output.weight."""
    packed = np.asarray(open_gguf(MODEL).tensor("output.weight").data)
    return packed, gguf_dequantize(packed, GGMLQuantizationType.Q6_K)


@pytest.fixture(scope="module")
def bias_npz(tmp_path_factory) -> tuple[Path, np.ndarray]:
    bias = np.linspace(-1, 1, 32, dtype=np.float32)
    path = tmp_path_factory.mktemp("npz") / "bias.npz"
    np.savez(path, bias=bias)
    return path, bias


@pytest.fixture(scope="module")
def gptq_layer():
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((64, 256)) * 0.05).astype(np.float32)
    return quantize_gptq_rtn(w, 4, 64, sym=True, name=LAYER, bias=rng.standard_normal(64))


@pytest.fixture(scope="module")
def gptq_dir(tmp_path_factory, gptq_layer) -> Path:
    path = tmp_path_factory.mktemp("gptq") / "ckpt"
    save_gptq_checkpoint(path, [gptq_layer], gptq_layer.config)
    return path


# -- success paths ------------------------------------------------------------


def test_gguf_plus_npz_weights_output_file(tmp_path, capsys, bias_npz):
    npz, bias = bias_npz
    x = np.random.default_rng(3).standard_normal((5, 256)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    code, stdout, err = run(
        [
            LINEAR,
            "--weights",
            MODEL,
            "--weights",
            npz,
            "--input",
            f"x={tmp_path / 'x.npy'}",
            "--output",
            out,
            "--threads",
            "2",
            "--exact",  # float32-rounding tolerance below (int8 default: test_kernels_int8)
        ],
        capsys,
    )
    assert code == 0, err
    assert stdout == f"wrote result0 (float32 [5, 32]) to {out}\n"
    y = np.load(out)
    _, w = q6k_head()
    np.testing.assert_allclose(y, x.astype(np.float64) @ w.T + bias, rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_npz_only_weights_and_positional_input(tmp_path, capsys):
    packed, w = q6k_head()
    bias = np.arange(32, dtype=np.float32)
    np.savez(tmp_path / "w.npz", **{"output.weight": packed, "bias": bias})
    x = np.ones((1, 256), np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(
        [
            LINEAR,
            "--weights",
            tmp_path / "w.npz",
            "--input",
            tmp_path / "x.npy",
            "--output-dir",
            tmp_path / "res",
        ],
        capsys,
    )
    assert code == 0, err
    y = np.load(tmp_path / "res" / "result0.npy")
    np.testing.assert_allclose(y, x @ w.T + bias, rtol=1e-5, atol=1e-5)


def test_random_input_is_seeded_and_printed(capsys, bias_npz):
    npz, bias = bias_npz
    argv = [LINEAR, "--weights", MODEL, "--weights", npz, "--input", "x=random:3x256", "--exact"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.startswith("result0: float32 [3, 32]  min ")
    assert "mean" in out and "std" in out and "[[" in out
    # The data is numpy's default_rng([seed, input index]) normal float32.
    x = np.random.default_rng([0, 0]).standard_normal((3, 256), dtype=np.float32)
    _, w = q6k_head()
    ref = x.astype(np.float64) @ w.T + bias
    code, out2, _ = run([*argv, "--print-full"], capsys)
    assert code == 0 and out2.count("\n") > out.count("\n") - 1
    values = np.array(
        out2.split("\n", 1)[1].replace("[", " ").replace("]", " ").split(), dtype=np.float64
    )
    np.testing.assert_allclose(values.reshape(3, 32), ref, rtol=1e-5, atol=1e-5)
    code, out3, _ = run([*argv, "--seed", "7"], capsys)
    assert code == 0 and out3 != out


def test_time_and_repeat(capsys, bias_npz):
    npz, _ = bias_npz
    code, out, err = run(
        [
            LINEAR,
            "--weights",
            MODEL,
            "--weights",
            npz,
            "--input",
            "x=random:2x256",
            "--time",
            "--repeat",
            "3",
        ],
        capsys,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert any(ln.startswith("weights: ") for ln in lines)
    assert any(ln.startswith("compile: ") for ln in lines)
    (run_line,) = [ln for ln in lines if ln.startswith("run: ")]
    assert "min " in run_line and "median " in run_line and "(3 runs)" in run_line


def test_gptq_checkpoint_directory_and_safetensors(tmp_path, capsys, gptq_dir, gptq_layer):
    x = np.random.default_rng(4).standard_normal((2, 256)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    w = dequantize_gptq_reference(gptq_layer)
    bias = gptq_layer.bias.astype(np.float32)
    for source in (gptq_dir, gptq_dir / "model.safetensors"):
        out_dir = tmp_path / source.name
        code, out, err = run(
            [
                GPTQ_GRAPH,
                "--weights",
                source,
                "--input",
                tmp_path / "x.npy",
                "--output-dir",
                out_dir,
                "--exact",  # float32-rounding tolerance below
            ],
            capsys,
        )
        assert code == 0, err
        assert "wrote result1 (float32 [64, 256])" in out
        np.testing.assert_array_equal(np.load(out_dir / "result1.npy"), w)
        np.testing.assert_allclose(
            np.load(out_dir / "result0.npy"),
            x.astype(np.float64) @ w.T + bias,
            rtol=1e-5,
            atol=1e-5,
        )


def test_function_selection(capsys):
    code, out, err = run(
        [
            TWO,
            "--function",
            "sum_and_product",
            "--input",
            "b=random:2x4",
            "--input",
            "a=random:2x4",
        ],
        capsys,
    )
    assert code == 0, err
    a = np.random.default_rng([0, 0]).standard_normal((2, 4), dtype=np.float32)
    b = np.random.default_rng([0, 1]).standard_normal((2, 4), dtype=np.float32)
    assert out.startswith("result0: float32 [2, 4]") and "result1: float32 [2, 4]" in out
    assert f"{(a + b).min():.6g}" in out and f"{(a * b).max():.6g}" in out
    code, out, err = run([TWO, "--function", "@square", "--input", "a=random"], capsys)
    assert code == 0, err
    assert out.startswith("result0: float32 [2, 4]")


def test_f16_file_tensor_widens_to_a_declared_f32_weight(tmp_path, capsys):
    model = TESTS / "data" / "gguf" / "mini-pure-Q4_0.gguf"
    graph = DATA / "f16_weight.mlir"
    out = tmp_path / "y.npy"
    code, _, err = run(
        [graph, "--weights", model, "--input", "x=random:2x8x100", "--output", out], capsys
    )
    assert code == 0, err
    w = np.asarray(open_gguf(model).tensor("blk.0.ffn_up.weight").data)
    assert w.dtype == np.float16
    x = np.random.default_rng([0, 0]).standard_normal((2, 8, 100), dtype=np.float32)
    np.testing.assert_array_equal(np.load(out), x * w.astype(np.float32))
    # Arrays given directly are not converted: the dtype must be the declared one.
    np.savez(tmp_path / "w.npz", **{"blk.0.ffn_up.weight": w})
    msg = run_error([graph, "--weights", tmp_path / "w.npz", "--input", "x=random:1x8x100"], capsys)
    assert 'weight "blk.0.ffn_up.weight" is float16 [8, 100]' in msg


# -- errors: one line, exit status 1, nothing run -----------------------------


def test_weight_type_mismatch_names_both_sides(tmp_path, capsys, bias_npz):
    text = LINEAR.read_text().replace("q6_k", "q4_k").replace("32x210xui8", "32x144xui8")
    graph = tmp_path / "g.mlir"
    graph.write_text(text)
    msg = run_error([graph, "--weights", MODEL, "--input", "x=random:1x256"], capsys)
    assert weight_error(msg, graph, "output.weight") == (
        f'weight "output.weight" is Q6_K [32, 256] in {MODEL} but the graph declares Q4_K [32, 256]'
    )


def test_weight_shape_and_dtype_mismatch(tmp_path, capsys):
    np.savez(
        tmp_path / "w.npz",
        **{"output.weight": np.zeros((32, 256), np.float32), "bias": np.zeros(32, np.float64)},
    )
    msg = run_error([LINEAR, "--weights", tmp_path / "w.npz", "--input", "x=random:1x256"], capsys)
    assert weight_error(msg, LINEAR, "output.weight") == (
        f'weight "output.weight" is float32 [32, 256] in {tmp_path / "w.npz"} but the graph '
        "declares Q6_K [32, 256] (stored as uint8 [32, 210])"
    )
    packed, _ = q6k_head()
    np.savez(tmp_path / "w2.npz", **{"output.weight": packed, "bias": np.zeros(32)})
    msg = run_error([LINEAR, "--weights", tmp_path / "w2.npz", "--input", "x=random:1x256"], capsys)
    assert 'weight "bias" is float64 [32]' in msg and "declares float32 [32]" in msg


def test_missing_weights(capsys, bias_npz):
    msg = weight_error(
        run_error([LINEAR, "--input", "x=random:1x256"], capsys), LINEAR, "output.weight"
    )
    assert msg.startswith('weight "output.weight" (Q6_K [32, 256]) is not given')
    assert 'also missing: "bias"' in msg and "pass --weights FILE" in msg
    msg = run_error([LINEAR, "--weights", MODEL, "--input", "x=random:1x256"], capsys)
    assert weight_error(msg, LINEAR, "bias").startswith(
        f'weight "bias" (float32 [32]) is not in {MODEL}'
    )


def test_a_missing_weight_suggests_close_names(tmp_path, capsys):
    graph = tmp_path / "g.mlir"
    graph.write_text(LINEAR.read_text().replace('"output.weight"', '"output.weights"'))
    msg = run_error([graph, "--weights", MODEL, "--input", "x=random:1x256"], capsys)
    assert weight_error(msg, graph, "output.weights").startswith(
        f'weight "output.weights" (Q6_K [32, 256]) is not in {MODEL} (did you mean "output.weight",'
    )
    # Nothing close: no suggestion.
    graph.write_text(LINEAR.read_text().replace('"output.weight"', '"zzz"'))
    msg = run_error([graph, "--weights", MODEL, "--input", "x=random:1x256"], capsys)
    assert "did you mean" not in msg


def test_parse_errors_keep_the_caret_lines(tmp_path, capsys):
    bad = tmp_path / "bad.mlir"
    source = '  %w = quant.weight "w" #quant.encoding<q9_k> [8, 512] : tensor<8x288xui8>'
    bad.write_text(f"func.func @f() {{\n{source}\n  func.return\n}}\n")
    code, out, err = run([bad], capsys)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"quantir-run: error: {bad}:2:41: Expected `q4_0`"), err
    assert lines[1] == source
    assert lines[2] == " " * 40 + "^^^^"
    assert len(lines) == 3


def test_ambiguous_weight(tmp_path, capsys, bias_npz):
    npz, _ = bias_npz
    shutil.copy(npz, tmp_path / "again.npz")
    msg = run_error(
        [
            LINEAR,
            "--weights",
            MODEL,
            "--weights",
            npz,
            "--weights",
            tmp_path / "again.npz",
            "--input",
            "x=random:1x256",
        ],
        capsys,
    )
    assert weight_error(msg, LINEAR, "bias").startswith(
        f'weight "bias" is in both {npz} and {tmp_path / "again.npz"}'
    )


def test_bad_weight_files(tmp_path, capsys):
    msg = run_error(
        [LINEAR, "--weights", tmp_path / "nope.gguf", "--input", "x=random:1x256"], capsys
    )
    assert "nope.gguf: no such file or directory" in msg
    (tmp_path / "w.bin").write_bytes(b"\x00" * 64)
    msg = run_error([LINEAR, "--weights", tmp_path / "w.bin", "--input", "x=random:1x256"], capsys)
    assert "not a weights file quantir reads" in msg
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 8)
    msg = run_error(
        [LINEAR, "--weights", tmp_path / "bad.gguf", "--input", "x=random:1x256"], capsys
    )
    assert "bad.gguf" in msg
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    msg = run_error(
        [LINEAR, "--weights", tmp_path / "bad.npz", "--input", "x=random:1x256"], capsys
    )
    assert "not a readable .npz archive" in msg


def test_gptq_config_and_format_mismatch(tmp_path, capsys, gptq_layer):
    for name, changes in (
        ("bits8", {"bits": 8}),
        ("v2", {"checkpoint_format": "gptq_v2"}),
    ):
        rng = np.random.default_rng(1)
        w = (rng.standard_normal((64, 256)) * 0.05).astype(np.float32)
        layer = quantize_gptq_rtn(
            w,
            changes.get("bits", 4),
            64,
            sym=True,
            name=LAYER,
            checkpoint_format=changes.get("checkpoint_format", "gptq"),
            bias=np.zeros(64),
        )
        path = tmp_path / name
        save_gptq_checkpoint(path, [layer], layer.config, layer.checkpoint_format)
        msg = run_error([GPTQ_GRAPH, "--weights", path, "--input", "x=random:1x256"], capsys)
        found = "bits=8" if name == "bits8" else "bits=4"
        fmt = "gptq_v2" if name == "v2" else "gptq"
        assert weight_error(msg, GPTQ_GRAPH, LAYER) == (
            f'weight "{LAYER}" is GPTQ {found} group_size=64 desc_act=false sym=true '
            f"format={fmt} [64, 256] in {path} but the graph declares GPTQ bits=4 "
            "group_size=64 desc_act=false sym=true format=gptq [64, 256]"
        )


def test_npz_with_partial_gptq_tensors(tmp_path, capsys, gptq_layer):
    np.savez(
        tmp_path / "g.npz",
        **{f"{LAYER}.qweight": gptq_layer.qweight, f"{LAYER}.scales": gptq_layer.scales},
    )
    msg = run_error(
        [GPTQ_GRAPH, "--weights", tmp_path / "g.npz", "--input", "x=random:1x256"], capsys
    )
    assert f"has {LAYER}.qweight, {LAYER}.scales but not {LAYER}.qzeros, {LAYER}.g_idx" in msg


@pytest.mark.parametrize(
    "inputs, expected",
    [
        ([], 'missing input "x" of @linear (tensor<?x256xf32>): pass --input x=PATH.npy'),
        (
            ["y=random:1x256"],
            '--input y=random:1x256: @linear has no input named "y" (its inputs: x)',
        ),
        (["x=random:1x256", "x=random:2x256"], 'input "x" of @linear is given twice'),
        (["random:1x256", "random:1x256"], "@linear takes 1 input(s), but 2 were given"),
        (
            ["x=random:1x255"],
            'input "x" from random:1x255 is float32 [1, 255] but the graph '
            "declares float32 [?, 256]",
        ),
        (
            ["x=random"],
            'input "x" has dynamic dimensions (float32 [?, 256]): give the shape, '
            "e.g. --input x=random:1x256",
        ),
    ],
)
def test_input_errors(capsys, bias_npz, inputs, expected):
    npz, _ = bias_npz
    argv = [LINEAR, "--weights", MODEL, "--weights", npz]
    for spec in inputs:
        argv += ["--input", spec]
    assert run_error(argv, capsys).startswith(expected)


def test_input_file_errors(tmp_path, capsys, bias_npz):
    npz, _ = bias_npz
    base = [LINEAR, "--weights", MODEL, "--weights", npz, "--input"]
    np.save(tmp_path / "f64.npy", np.zeros((2, 256)))
    msg = run_error([*base, f"x={tmp_path / 'f64.npy'}"], capsys)
    assert msg == (
        f'input "x" from {tmp_path / "f64.npy"} is float64 [2, 256] but the graph '
        "declares float32 [?, 256] (convert it with .astype(np.float32))"
    )
    msg = run_error([*base, f"x={tmp_path / 'missing.npy'}"], capsys)
    assert msg == f'input "x": {tmp_path / "missing.npy"}: no such file'
    msg = run_error([*base, f"x={npz}"], capsys)
    assert "is a .npz archive; --input takes one .npy array" in msg
    (tmp_path / "junk.npy").write_bytes(b"junk")
    assert "not a readable .npy file" in run_error([*base, f"x={tmp_path / 'junk.npy'}"], capsys)


def test_graph_file_errors(tmp_path, capsys):
    assert run_error([tmp_path / "none.mlir"], capsys) == f"{tmp_path / 'none.mlir'}: no such file"
    bad = tmp_path / "bad.mlir"
    bad.write_text(
        "func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n"
        "  %y = qnn.add %x, %z : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n"
        "  func.return %y : tensor<2xf32>\n}\n"
    )
    msg = run_error([bad], capsys)
    assert msg.startswith(f"{bad}:") and "values used but not defined: [%z]" in msg
    bad.write_text(
        "func.func @f(%x: tensor<2xf32>) -> tensor<3xf32> {\n"
        "  %y = qnn.add %x, %x : (tensor<2xf32>, tensor<2xf32>) -> tensor<3xf32>\n"
        "  func.return %y : tensor<3xf32>\n}\n"
    )
    assert run_error([bad], capsys) == (
        f"{bad}:2:3: qnn.add: result shape [3] does not match the broadcast shape [2] of the "
        "operands"
    )
    assert run_error([TWO], capsys) == (
        f"{TWO} defines 2 functions (@square, @sum_and_product): choose one with --function"
    )
    assert run_error([TWO, "--function", "cube"], capsys) == (
        f"{TWO} has no function @cube (its functions: @square, @sum_and_product)"
    )


def test_output_errors(tmp_path, capsys):
    base = [
        TWO,
        "--function",
        "sum_and_product",
        "--input",
        "a=random:1x4",
        "--input",
        "b=random:1x4",
    ]
    assert run_error([*base, "--output", tmp_path / "y.npy"], capsys) == (
        "@sum_and_product returns 2 results: --output takes one; use --output-dir DIR"
    )
    msg = run_error(
        [TWO, "--function", "square", "--input", "a=random", "--output", tmp_path / "no" / "y.npy"],
        capsys,
    )
    no = tmp_path / "no"
    assert msg == f"--output {no / 'y.npy'}: directory {no} does not exist"
    (tmp_path / "file").write_text("")
    msg = run_error([*base, "--output-dir", tmp_path / "file"], capsys)
    assert "exists and is not a directory" in msg


def test_runtime_shape_mismatch_is_one_line(capsys):
    msg = run_error(
        [
            TWO,
            "--function",
            "sum_and_product",
            "--input",
            "a=random:2x4",
            "--input",
            "b=random:3x4",
        ],
        capsys,
    )
    assert "@sum_and_product" in msg and "differs" in msg


def test_gpu_device_without_gpu_runtime(capsys, monkeypatch, bias_npz):
    npz, _ = bias_npz
    monkeypatch.setitem(sys.modules, "quantir.runtime.cuda", None)
    msg = run_error(
        [
            LINEAR,
            "--weights",
            MODEL,
            "--weights",
            npz,
            "--input",
            "x=random:1x256",
            "--device",
            "cuda:0",
        ],
        capsys,
    )
    assert msg.startswith("device 'cuda:0' is not available: quantir's GPU runtime")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--threads", "0"], "expected a positive integer, got '0'"),
        (["--repeat", "x"], "expected a positive integer, got 'x'"),
        (["--input", "x=random:2xa"], "bad shape '2xa'"),
        (["--output", "a.npy", "--output-dir", "d"], "not allowed with argument"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, expected):
    code, out, err = run([LINEAR, *argv], capsys)
    assert code == 2 and out == ""
    assert err.startswith("quantir-run: error: ") and expected in err and err.count("\n") == 1


def test_one_line_formats_parse_errors():
    error = ValueError("f.mlir:5:1\n  %y = foo\n  ^\nvalues used\nbut not defined\n")
    assert one_line(error) == "f.mlir:5:1: values used but not defined"
    assert one_line(ValueError("f.mlir:2:3: error: bad op")) == "f.mlir:2:3: bad op"


# -- the installed command, as a user runs it -----------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).parent / "quantir-run"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "quantir.runtime.tools.quantir_run"]


def test_subprocess_success_and_errors(tmp_path, bias_npz):
    npz, _ = bias_npz
    env = dict(os.environ)
    ok = subprocess.run(
        [
            *_command(),
            str(LINEAR),
            "--weights",
            str(MODEL),
            "--weights",
            str(npz),
            "--input",
            "x=random:2x256",
            "--output",
            str(tmp_path / "y.npy"),
            "--time",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "wrote result0 (float32 [2, 32])" in ok.stdout and "compile: " in ok.stdout
    assert np.load(tmp_path / "y.npy").shape == (2, 32)
    bad = subprocess.run(
        [*_command(), str(LINEAR), "--weights", str(MODEL), "--input", "x=random:2x256"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith(f'quantir-run: error: {LINEAR}:5:3: weight "bias"')
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    usage = subprocess.run([*_command()], capture_output=True, text=True, env=env, timeout=120)
    assert usage.returncode == 2 and "quantir-run: error:" in usage.stderr


def test_exact_and_pipeline_exclude_each_other(capsys):
    code, _, err = run([LINEAR, "--exact", "--pipeline", "quantir-cpu"], capsys)
    assert code != 0 and "--exact" in err and "Traceback" not in err
