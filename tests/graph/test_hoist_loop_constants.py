"""hoist-loop-constants in the named pipelines saves canonicalize sweeps and changes
no code: every kernel's LLVM IR is what the pipeline without it gives."""

from __future__ import annotations

import pytest
from xdsl.dialects import func

from quantir.compiler.backend import cpu_codegen
from quantir.compiler.backend.llvm_translation import translate_kernel
from quantir.compiler.context import make_context
from quantir.compiler.graph import DType, Graph, TensorType, Weight, ops
from quantir.compiler.pipeline import PIPELINES, run_pipeline
from quantir.dialects.encoding import QuantizationEncoding as E
from quantir.dialects.qrt import KERNEL_ATTR


def _graph() -> Graph:
    with Graph("g", input_types=[TensorType(DType.float32, ["m", 512])]) as g:
        x = g.inputs[0]
        outs = []
        for i, encoding in enumerate((E.Q4_K, E.Q6_K, E.Q5_0, E.Q2_K, E.Q8_0)):
            weight = Weight(f"w{i}", DType.uint8, [32, 512], quantization_encoding=encoding)
            w = g.add_weight(weight)
            outs.append(ops.qmatmul(encoding, None, x, w))
        table = g.add_weight(Weight("t", DType.uint8, [64, 512], quantization_encoding=E.Q3_K))
        outs.append(ops.dequantize(E.Q3_K, table) + ops.dequantize(E.Q3_K, table))
        g.output(*outs)
    return g


def _kernels_llvm_ir(spec: str) -> list[str]:
    module = _graph().module.clone()
    run_pipeline(make_context(), module, spec)
    info = cpu_codegen.target_info()
    return [
        str(translate_kernel(f, info, "kernel")[0])
        for f in module.ops
        if isinstance(f, func.FuncOp) and KERNEL_ATTR in f.attributes
    ]


@pytest.mark.parametrize("pipeline", ["quantir-cpu", "quantir-cpu-exact", "quantir-cpu-scalar"])
def test_kernels_are_unchanged(pipeline: str) -> None:
    spec = PIPELINES[pipeline]
    assert "hoist-loop-constants," in spec
    without = spec.replace("hoist-loop-constants,", "")
    ours = _kernels_llvm_ir(spec)
    assert len(ours) > 6 and ours == _kernels_llvm_ir(without)
