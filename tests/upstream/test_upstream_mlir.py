"""Cross-checks against upstream LLVM/MLIR 22 (docs/pipeline.md, "Upstream MLIR").

(a) The final IR of every named pipeline, for every example and test graph
    (every GGUF encoding, GPTQ variants), parses and verifies in `mlir-opt`
    with no flags.
(b) The CPU kernels (and host function) of every encoding, compiled through
    upstream instead of quantir's own translation (`mlir-opt` lowering to the
    LLVM dialect, `mlir-translate --mlir-to-llvmir`, loaded with llvmlite),
    dequantize and gather bit for bit as quantir's own code does, and their
    qmatmul agrees with quantir's to float32 rounding.
(c) quantir's own LLVM IR passes `opt -passes=verify` and `llc` (host CPU),
    and its NVPTX LLVM IR `llc -march=nvptx64 -mcpu=sm_90`.

The tools come from Debian's `mlir-22-tools` and `llvm-22` (.ci/run installs
them); without them these tests skip, except under QUANTIR_REQUIRE_UPSTREAM=1.
"""

from __future__ import annotations

import ctypes
import io
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from graphs import GGUF, GPTQ, K, N, all_graphs, gptq_config
from upstream_tools import run, tool
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.printer import Printer

from quantir.compiler.backend import cpu_codegen, nvptx
from quantir.compiler.backend.cpu_codegen import amx_usable
from quantir.compiler.backend.llvm_translation import translate_module
from quantir.compiler.pipeline import cpu_lowering, lower
from quantir.dialects.qrt import KERNEL_ATTR
from quantir.runtime.jit import compile_source, load_program, parse_source

ROOT = Path(__file__).resolve().parents[2]

GRAPHS = all_graphs()
FILES = [
    ROOT / "examples" / "tiny_mlp.mlir",
    *sorted((ROOT / "tests" / "graph" / "data").glob("*.mlir")),
    *sorted((ROOT / "tests" / "tools" / "data").glob("*.mlir")),
]
SOURCES = {**GRAPHS, **{str(p.relative_to(ROOT)): p.read_text() for p in FILES}}

PIPELINES = {  # named pipeline -> the target lower() takes
    "quantir-cpu": "cpu",
    "quantir-cpu-exact": "cpu",
    "quantir-cpu-scalar": "cpu",
    "quantir-gpu": "gpu",
    "cpu-tiles": "cpu",
}
SPECS = {name: name for name in PIPELINES} | {"cpu-tiles": cpu_lowering(int8=True, amx="on")}
"""The pass list of each: `cpu-tiles` is quantir-cpu with AMX tile bodies forced in
(`amx=auto` leaves them out of these small weights)."""

# Upstream's lowering of the final CPU IR to the LLVM dialect.
UPSTREAM_TO_LLVM = [
    "--convert-scf-to-cf",
    "--convert-vector-to-llvm=enable-amx",  # amx.* tile ops, where the host took them
    "--expand-strided-metadata",
    "--finalize-memref-to-llvm",
    "--convert-arith-to-llvm",
    "--convert-math-to-llvm",
    "--convert-func-to-llvm",
    "--convert-cf-to-llvm",
    "--reconcile-unrealized-casts",
]


def _print(module: ModuleOp) -> str:
    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


@cache
def lowered(name: str, pipeline: str) -> ModuleOp:
    """The final IR of graph `name` after `pipeline` (shared by the tests; do not mutate)."""
    return lower(parse_source(SOURCES[name], name), PIPELINES[pipeline], pipeline=SPECS[pipeline])


@cache
def final_ir(name: str, pipeline: str) -> str:
    return _print(lowered(name, pipeline))


# -- (a) mlir-opt reads the final IR of every pipeline ---------------------------


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("name", SOURCES)
def test_mlir_opt_accepts_final_ir(name: str, pipeline: str) -> None:
    text = final_ir(name, pipeline)
    assert "quant.encoding<" not in text and "#quant." not in text
    out = run([tool("mlir-opt")], stdin=text)  # parse, verify, print: no flags
    assert "func.func" in out


# -- (c) llc and opt -passes=verify on quantir's LLVM IR ------------------------


@pytest.mark.parametrize("name", GRAPHS)
def test_llc_and_opt_verify_quantir_llvm_ir(name: str, tmp_path: Path) -> None:
    cpu_ll = tmp_path / "cpu.ll"
    module, _ = translate_module(lowered(name, "quantir-cpu").clone(), cpu_codegen.target_info())
    cpu_ll.write_text(str(module))
    run([tool("opt"), "-passes=verify", "-disable-output", str(cpu_ll)])
    host = cpu_codegen.host_target()
    run(
        [tool("llc"), "-O2", f"-mcpu={host.cpu}", f"-mattr={host.features}", str(cpu_ll), "-o", "-"]
    )

    gpu_ll = tmp_path / "gpu.ll"
    module, _ = translate_module(lowered(name, "quantir-gpu").clone(), nvptx.target_info("sm_90"))
    gpu_ll.write_text(str(module))
    run([tool("opt"), "-passes=verify", "-disable-output", str(gpu_ll)])
    ptx = run([tool("llc"), "-march=nvptx64", "-mcpu=sm_90", str(gpu_ll), "-o", "-"])
    assert ".visible .entry" in ptx


# -- (b) the CPU path compiled through upstream ----------------------------------


def _memref_args(f: func.FuncOp) -> list[MemRefType]:
    types = list(f.function_type.inputs.data)
    assert all(isinstance(t, MemRefType) for t in types), types
    return types


class UpstreamFunction:
    """A host function compiled by mlir-opt, mlir-translate and llvmlite (O3, host CPU)."""

    def __init__(self, final: ModuleOp, name: str):
        host = next(
            f
            for f in final.ops
            if isinstance(f, func.FuncOp)
            and f.sym_name.data == name
            and KERNEL_ATTR not in f.attributes
        )
        self.types = _memref_args(host)
        llvm_dialect = run([tool("mlir-opt"), *UPSTREAM_TO_LLVM], stdin=_print(final))
        llvm_ir = run([tool("mlir-translate"), "--mlir-to-llvmir"], stdin=llvm_dialect)
        self.loaded = cpu_codegen.LoadedObject(cpu_codegen.compile_object(llvm_ir))
        argtypes = []
        for t in self.types:  # upstream's memref calling convention, expanded
            rank = t.get_num_dims()
            argtypes += [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int64] * (1 + 2 * rank)
        self.fn = ctypes.CFUNCTYPE(None, *argtypes)(self.loaded.address(name))

    def __call__(self, *arrays: np.ndarray) -> None:
        args: list[object] = []
        for t, a in zip(self.types, arrays, strict=True):
            assert a.flags.c_contiguous and a.ndim == t.get_num_dims()
            strides = [s // a.itemsize for s in a.strides]
            args += [a.ctypes.data, a.ctypes.data, 0, *a.shape, *strides]
        self.fn(*args)


def _gguf_weight(rng: np.random.Generator, encoding) -> np.ndarray:
    from quantir.runtime import quantize

    w = rng.standard_normal((N, K)).astype(np.float32)
    return quantize(encoding.name.lower(), w)


def _gptq_weight(rng: np.random.Generator, bits: int, group: int, act: bool, sym: bool):
    from quantir.dialects.encoding import QuantizationEncoding, packed_layout

    parts = packed_layout(QuantizationEncoding.GPTQ, gptq_config(bits, group, act, sym), N, K)
    shapes = {p.name: p.shape for p in parts}
    groups = shapes["scales"][0]
    qweight = rng.integers(-(2**31), 2**31, shapes["qweight"], dtype=np.int64).astype(np.int32)
    qzeros = rng.integers(-(2**31), 2**31, shapes["qzeros"], dtype=np.int64).astype(np.int32)
    scales = rng.uniform(0.001, 0.05, shapes["scales"]).astype(np.float16)
    if act:
        g_idx = rng.integers(0, groups, K).astype(np.int32)
    else:
        g_idx = (np.arange(K) // group).astype(np.int32)
    return {"qweight": qweight, "qzeros": qzeros, "scales": scales, "g_idx": g_idx}


NO_TILES = pytest.mark.skipif(not amx_usable(), reason="the host cannot run AMX tiles")
UPSTREAM_CASES = [
    pytest.param(name, p, id=f"{name}-{p}", marks=[NO_TILES] if p == "cpu-tiles" else [])
    for name in GRAPHS
    for p in ("quantir-cpu", "quantir-cpu-exact", "cpu-tiles")
    if not (p == "cpu-tiles" and name.startswith("gptq"))  # tiles are GGUF's
]
"""Every encoding and GPTQ variant, on the integer (default) and the exact CPU path,
and with AMX tiles where the host runs them."""


@pytest.mark.parametrize("name,pipeline", UPSTREAM_CASES)
def test_upstream_compiled_cpu_kernels_match(name: str, pipeline: str) -> None:
    rng = np.random.default_rng(sum(map(ord, name)))
    if name.startswith("gptq"):
        variant = next(
            v
            for v in GPTQ
            if name.startswith(f"gptq{v[0]}_g{v[1]}")
            and ("_act" in name) == v[2]
            and ("_asym" in name) != v[3]
        )
        weight = _gptq_weight(rng, *variant)
        parts = [weight[p] for p in ("qweight", "qzeros", "scales", "g_idx")]
    else:
        weight = _gguf_weight(rng, next(e for e in GGUF if e.name.lower() == name))
        parts = [weight]
    ours = load_program(compile_source(GRAPHS[name], "cpu", pipeline=SPECS[pipeline]))
    upstream = UpstreamFunction(lowered(name, pipeline), "f")
    # 5 rows take the vector dots; 37 the AMX tiles where the host has them (the
    # default CPU kernel holds both, chosen at run time by the rows of x).
    for m in (5, 37) if pipeline in ("quantir-cpu", "cpu-tiles") else (5,):
        x = rng.standard_normal((m, K)).astype(np.float32)
        # GGUF graphs also gather rows by index: repeated, unsorted, first and last.
        ids = [] if name.startswith("gptq") else [np.array([N - 1, 0, 7, N - 1, 3], np.int32)]
        y_ours, d_ours, *e_ours = ours([x, *ids], {"w": weight})
        y_up = np.zeros((m, N), np.float32)
        d_up = np.zeros((N, K), np.float32)
        e_up = [np.zeros((len(i), K), np.float32) for i in ids]
        upstream(x, *ids, *parts, y_up, d_up, *e_up)

        # dequantize and gather: bit for bit
        assert np.array_equal(d_up.view(np.uint32), d_ours.view(np.uint32)), name
        for i, up, own in zip(ids, e_up, e_ours, strict=True):
            assert np.array_equal(up.view(np.uint32), own.view(np.uint32)), name
            assert np.array_equal(own.view(np.uint32), d_ours[i].view(np.uint32)), name
        # qmatmul: the same sums, in an order each compiler chooses
        bound = 1e-5 * (np.abs(x) @ np.abs(d_ours).T) + 1e-30
        assert np.all(np.abs(y_up - y_ours) <= bound), float(np.max(np.abs(y_up - y_ours) / bound))
