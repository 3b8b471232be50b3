"""share-launches in the named pipelines: qmatmuls reading the same x quantize it
once per activation format (one launch of the x-quantizing kernel), and every
product is bit-identical to the op compiled on its own."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects import func

from quantir.compiler.backend import cpu_codegen
from quantir.compiler.context import make_context
from quantir.compiler.graph import DType, Graph, TensorType, Weight, ops
from quantir.compiler.pipeline import cpu_lowering, run_pipeline
from quantir.dialects.encoding import QuantizationEncoding as E
from quantir.dialects.qrt import KERNEL_ATTR
from quantir.runtime import compile_graph
from quantir.runtime.quantize import quantize

K = 256
# (name, encoding, rows): q, k and v read x; up reads x + x (other values); down reads x again.
MATRICES = [
    ("q", E.Q4_K, 64),
    ("k", E.Q4_K, 32),
    ("v", E.Q6_K, 32),
    ("up", E.Q4_K, 64),
    ("o", E.Q8_0, 32),
    ("down", E.Q6_K, 64),
]


def _weight(name: str, encoding: E, rows: int):
    return Weight(name, DType.uint8, [rows, K], quantization_encoding=encoding)


def _graph() -> Graph:
    with Graph("block", input_types=[TensorType(DType.float32, ["m", K])]) as g:
        x = g.inputs[0]
        outs = []
        for name, encoding, rows in MATRICES:
            w = g.add_weight(_weight(name, encoding, rows))
            outs.append(ops.qmatmul(encoding, None, x + x if name == "up" else x, w))
        g.output(*outs)
    return g


def _alone(name: str, encoding: E, rows: int) -> Graph:
    with Graph(f"alone_{name}", input_types=[TensorType(DType.float32, ["m", K])]) as g:
        x = g.inputs[0]
        w = g.add_weight(_weight(name, encoding, rows))
        g.output(ops.qmatmul(encoding, None, x + x if name == "up" else x, w))
    return g


def _packed() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        name: quantize(encoding.name.lower(), rng.standard_normal((rows, K)).astype(np.float32))
        for name, encoding, rows in MATRICES
    }


def _x_launches(pipeline: str) -> list[str]:
    """The kernels launched with the graph input x as their first argument (x quantizing)."""
    module = _graph().module.clone()
    run_pipeline(make_context(), module, pipeline)
    (host,) = [
        f for f in module.ops if isinstance(f, func.FuncOp) and KERNEL_ATTR not in f.attributes
    ]
    x = host.body.block.args[0]
    return [
        call.callee.root_reference.data
        for call in host.walk()
        if isinstance(call, func.CallOp) and call.arguments[2:3] == (x,)
    ]


def test_x_is_quantized_once_per_format() -> None:
    # q and k (q4_k: sums per 32) share one quantization of x, v and down (q6_k:
    # sums per 16) another, o (q8_0: no sums) a third; up reads x + x.
    launched = _x_launches("quantir-cpu")
    assert len(launched) == len(set(launched)) == 3


@pytest.mark.parametrize("amx", ["off", "on"])
@pytest.mark.parametrize("m", [1, 5, 33])
def test_shared_quantization_is_bit_identical(amx: str, m: int) -> None:
    if amx == "on" and not cpu_codegen.amx_usable():
        pytest.skip("the host has no AMX tiles (or may not use them)")
    pipeline = cpu_lowering(int8=True, amx=amx)
    packed = _packed()
    x = np.random.default_rng(m).standard_normal((m, K)).astype(np.float32)
    together = compile_graph(_graph(), threads=2, pipeline=pipeline)(x, weights=packed)
    for (name, encoding, rows), y in zip(MATRICES, together, strict=True):
        alone = compile_graph(_alone(name, encoding, rows), threads=2, pipeline=pipeline)
        (want,) = alone(x, weights={name: packed[name]})
        np.testing.assert_array_equal(y, want, err_msg=name)
