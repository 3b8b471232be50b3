"""lower-quant-to-loops lowers each distinct quant op once and clones its loops for
the ops equal to it (a model's layers repeat a few shapes): the clones compute
what a fresh lowering computes. With outline=true (the named pipelines) the
equal ops launch the first one's kernels instead."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func, scf

from quantir.compiler.context import make_context
from quantir.compiler.graph import DType, Graph, TensorType, Weight, ops
from quantir.compiler.lowering import gguf_int8, gguf_kernels
from quantir.compiler.pipeline import run_pipeline
from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.qrt import KERNEL_ATTR, LAUNCH_ATTR
from quantir.runtime import compile_graph
from quantir.runtime.quantize import quantize

Q4_K, Q6_K = QuantizationEncoding.Q4_K, QuantizationEncoding.Q6_K


def _graph() -> Graph:
    """Three q4_k matmuls of one shape (one with another x) and a q6_k one."""
    with Graph("layers", input_types=[TensorType(DType.float32, ["m", 256])]) as g:
        x = g.inputs[0]
        ws = [
            g.add_weight(Weight(f"w{i}", DType.uint8, [32, 256], quantization_encoding=Q4_K))
            for i in range(3)
        ]
        w6 = g.add_weight(Weight("w6", DType.uint8, [32, 256], quantization_encoding=Q6_K))
        a = ops.qmatmul(Q4_K, None, x, ws[0])
        b = ops.qmatmul(Q4_K, None, x + x, ws[1])
        c = ops.qmatmul(Q4_K, None, x, ws[2])
        d = ops.qmatmul(Q6_K, None, x, w6)
        g.output(a + b + c + d)
    return g


def test_each_distinct_op_is_lowered_once(monkeypatch):
    calls = []
    real = gguf_int8.lower_qmatmul_int8

    def counting(*args, **kwargs):
        calls.append(args[1].encoding)
        return real(*args, **kwargs)

    monkeypatch.setattr(gguf_int8, "lower_qmatmul_int8", counting)
    module = _graph().module.clone()
    run_pipeline(make_context(), module, "quantir-bufferize,lower-quant-to-loops")
    assert calls == [Q4_K, Q6_K]
    # Four matmul nests (plus the x-quantizing ones), one per op.
    nests = [o for o in module.walk() if isinstance(o, scf.ParallelOp)]
    assert len([n for n in nests if n.attributes.get("qrt.gpu_mapping")]) == 4


@pytest.mark.parametrize("pipeline", ["quantir-cpu", "quantir-cpu-exact", "quantir-cpu-scalar"])
def test_named_pipelines_launch_one_kernel_per_distinct_op(pipeline, monkeypatch):
    calls = []
    for module, name in ((gguf_int8, "lower_qmatmul_int8"), (gguf_kernels, "lower_qmatmul")):
        real = getattr(module, name)

        def counting(*args, _real=real, **kwargs):
            calls.append(args[1].encoding)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    module = _graph().module.clone()
    run_pipeline(make_context(), module, pipeline)
    assert calls == [Q4_K, Q6_K]
    kernels = [f for f in module.ops if isinstance(f, func.FuncOp) and KERNEL_ATTR in f.attributes]
    # The host function only launches kernels (each launch an scf.parallel
    # marked qrt.launch around one call of the kernel), and each kernel is distinct.
    (host,) = [f for f in module.ops if isinstance(f, func.FuncOp) and f not in kernels]
    loops = [o for o in host.body.block.ops if isinstance(o, scf.ParallelOp)]
    assert loops and all(LAUNCH_ATTR in loop.attributes for loop in loops)
    launches = [o for o in host.walk() if isinstance(o, func.CallOp)]
    assert len(launches) == len(loops)
    assert len({k.sym_name.data for k in kernels}) == len(kernels)
    # The three q4_k matmuls launch one matmul kernel (the one taking w0..w2).
    assert host.arg_attrs is not None
    weight_args = {
        arg: attrs.data["quant.weight"].data
        for arg, attrs in zip(host.body.block.args, host.arg_attrs.data, strict=True)
        if "quant.weight" in attrs.data
    }
    by_kernel: dict[str, list[str]] = {}
    for launch in launches:
        for arg in launch.arguments[2:]:
            if arg in weight_args:
                by_kernel.setdefault(launch.callee.root_reference.data, []).append(weight_args[arg])
    assert sorted(sorted(ws) for ws in by_kernel.values()) == [["w0", "w1", "w2"], ["w6"]]


@pytest.mark.parametrize("pipeline", ["quantir-cpu", "quantir-cpu-scalar", None])
def test_cloned_lowerings_compute_each_op(pipeline):
    rng = np.random.default_rng(2)
    weights = {f"w{i}": rng.standard_normal((32, 256)).astype(np.float32) for i in range(3)}
    weights["w6"] = rng.standard_normal((32, 256)).astype(np.float32)
    packed = {n: quantize("q6_k" if n == "w6" else "q4_k", w) for n, w in weights.items()}
    x = rng.standard_normal((3, 256)).astype(np.float32)
    if pipeline is None:
        compiled = compile_graph(_graph(), threads=1, exact=True)
    else:
        compiled = compile_graph(_graph(), threads=1, pipeline=pipeline)
    (y,) = compiled(x, weights=packed)
    deq = {n: _dequantized(n, p) for n, p in packed.items()}
    x64 = x.astype(np.float64)
    ref = x64 @ deq["w0"].T + (2 * x64) @ deq["w1"].T + x64 @ deq["w2"].T + x64 @ deq["w6"].T
    # The int8 path quantizes x (about 1e-2 normwise); the others are exact.
    tol = 3e-2 if pipeline == "quantir-cpu" else 1e-4
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol * np.abs(ref).max())


def _dequantized(name: str, packed: np.ndarray) -> np.ndarray:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    kind = GGMLQuantizationType.Q6_K if name == "w6" else GGMLQuantizationType.Q4_K
    return dequantize(packed, kind).astype(np.float64)
