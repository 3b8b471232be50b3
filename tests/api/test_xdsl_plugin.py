"""quantir as an xDSL plugin (the `xdsl.universe` entry point in pyproject.toml).

With quantir installed, a plain `xdsl-opt` knows the quant, qnn and qrt
dialects and quantir's passes; registering quantir a second time (quantir-opt
on top of the plugin, or loading the dialects into a context twice) must not
raise xDSL's AlreadyRegisteredConstructException.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from xdsl.context import Context
from xdsl.universe import Universe
from xdsl.xdsl_opt_main import xDSLOptMain

from quantir.compiler.context import load_quantir_dialects, make_context
from quantir.compiler.tools.quantir_opt import QuantirOptMain
from quantir.dialects.arith_vector import ExtUIOp as VectorExtUIOp
from quantir.dialects.qrt import LaunchOp
from quantir.dialects.quant import DequantizeOp, QMatmulOp, WeightOp

GRAPH = """\
func.func @linear(%x: tensor<?x512xf32>) -> tensor<?x8xf32> {
  %w = quant.weight "linear.weight" #quant.encoding<q6_k> [8, 512] : tensor<8x420xui8>
  %y = quant.qmatmul #quant.encoding<q6_k> %x, %w
      : (tensor<?x512xf32>, tensor<8x420xui8>) -> tensor<?x8xf32>
  %b = quant.weight "linear.bias" : tensor<8xf32>
  %z = qnn.add %y, %b : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  func.return %z : tensor<?x8xf32>
}
"""


def test_entry_point_is_registered() -> None:
    (ep,) = [ep for ep in entry_points(group="xdsl.universe") if ep.name == "quantir"]
    assert ep.value == "quantir.compiler.universe:QUANTIR_UNIVERSE"
    universe = ep.load()
    assert isinstance(universe, Universe)
    assert {"quant", "qnn", "qrt"} <= set(universe.all_dialects)
    assert universe.all_dialects["quant"]().name == "quant"
    assert {"quantir-bufferize", "lower-quant-to-loops", "quantir-cpu"} <= set(universe.all_passes)
    assert {"quantir-llvm", "quantir-ptx"} <= set(universe.all_targets)


def test_the_multiverse_includes_quantir() -> None:
    multiverse = Universe.get_multiverse()
    assert {"quant", "qnn", "qrt"} <= set(multiverse.all_dialects)
    assert "lower-quant-to-loops" in multiverse.all_passes


def xdsl_opt() -> Path:
    path = Path(sys.executable).parent / "xdsl-opt"
    if not path.exists():
        pytest.skip("xdsl-opt is not installed next to this Python")
    return path


def test_xdsl_opt_parses_and_prints_quantir_ir(tmp_path: Path) -> None:
    src = tmp_path / "graph.mlir"
    src.write_text(GRAPH)
    result = subprocess.run(
        [str(xdsl_opt()), str(src)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (
        '%w = quant.weight "linear.weight" #quant.encoding<q6_k> [8, 512] : tensor<8x420xui8>'
        in result.stdout
    )
    assert "quant.qmatmul #quant.encoding<q6_k> %x, %w" in result.stdout
    assert "qnn.add %y, %b" in result.stdout


def test_xdsl_opt_runs_quantir_verifiers(tmp_path: Path) -> None:
    src = tmp_path / "bad.mlir"
    src.write_text(GRAPH.replace("tensor<8x420xui8>", "tensor<8x288xui8>"))
    result = subprocess.run(
        [str(xdsl_opt()), str(src)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "q6_k packed bytes for a 8x512 weight must be 8x420" in result.stderr


@pytest.mark.parametrize(
    "pipeline,target",
    [("quantir-cpu", "cpu"), ("quantir-cpu-scalar", "cpu"), ("quantir-gpu", "nvptx")],
)
def test_xdsl_opt_runs_the_named_pipelines(tmp_path: Path, pipeline: str, target: str) -> None:
    src = tmp_path / "graph.mlir"
    src.write_text(GRAPH)
    result = subprocess.run(
        [str(xdsl_opt()), "-p", pipeline, str(src)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f'qrt.target = "{target}"' in result.stdout
    # The pipelines end in upstream MLIR: a launch is an scf.parallel calling its kernel.
    assert "qrt.launch = {" in result.stdout and "func.call @linear_kernel" in result.stdout
    assert "quant.qmatmul" not in result.stdout and "qrt.launch @" not in result.stdout


@pytest.mark.parametrize(
    "pipeline,target,marker",
    [("quantir-cpu", "quantir-llvm", "define void @"), ("quantir-gpu", "quantir-ptx", ".entry ")],
)
def test_xdsl_opt_emits_through_quantir_targets(
    tmp_path: Path, pipeline: str, target: str, marker: str
) -> None:
    src = tmp_path / "graph.mlir"
    src.write_text(GRAPH)
    result = subprocess.run(
        [str(xdsl_opt()), "-p", pipeline, "-t", target, str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_quantir_opt_on_top_of_the_plugin_registers_once() -> None:
    # Both drivers see the plugin through the multiverse; quantir-opt also
    # registers its own factories. Neither may raise AlreadyRegistered.
    plain = xDSLOptMain(args=[])
    ours = QuantirOptMain(args=[])
    for main in (plain, ours):
        assert main.ctx.get_optional_op("quant.weight") is WeightOp
        assert main.ctx.get_optional_op("qrt.launch") is LaunchOp
        assert "lower-quant-to-loops" in main.available_passes
    # quantir-opt swaps in the vector-capable arith casts.
    assert ours.ctx.get_optional_op("arith.extui") is VectorExtUIOp


@pytest.mark.parametrize(
    "make",
    [
        Context,
        lambda: xDSLOptMain(args=[]).ctx,
        lambda: QuantirOptMain(args=[]).ctx,
        make_context,
    ],
    ids=["empty", "xdsl-opt", "quantir-opt", "make_context"],
)
def test_loading_the_dialects_twice_is_harmless(make) -> None:
    ctx = make()
    load_quantir_dialects(ctx)
    load_quantir_dialects(ctx)
    assert ctx.get_optional_op("quant.dequantize") is DequantizeOp
    assert ctx.get_optional_op("quant.qmatmul") is QMatmulOp
