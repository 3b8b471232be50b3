"""Build quantir graphs from Python.

The API mirrors a well-known graph compiler's Python graph API::

    from quantir.compiler.graph import DType, Graph, TensorType, Weight, ops
    from quantir.dialects.encoding import QuantizationEncoding

    with Graph("mlp", input_types=[TensorType(DType.float32, ["batch", 4096])]) as g:
        x = g.inputs[0]
        w = g.add_weight(Weight("w", DType.uint8, [4096, 4096],
                                quantization_encoding=QuantizationEncoding.Q4_K))
        g.output(ops.qmatmul(QuantizationEncoding.Q4_K, None, x, w))

    print(g)                                   # MLIR text (quant/qnn tensor ops)

The printed IR is exactly what a hand-written graph file holds, so a built
graph can be saved and run with `quantir-run`, or compiled and called from
Python with the runtime::

    from quantir.runtime import compile_graph

    y, = compile_graph(g)(x_array, weights={"w": packed_bytes})
"""

from quantir.compiler.graph import ops
from quantir.compiler.graph.builder import Graph
from quantir.compiler.graph.types import Dim, TensorType
from quantir.compiler.graph.value import TensorValue
from quantir.dialects.encoding import QuantizationConfig, QuantizationEncoding
from quantir.dialects.weight import DeviceRef, DType, Weight

__all__ = [
    "DType",
    "DeviceRef",
    "Dim",
    "Graph",
    "QuantizationConfig",
    "QuantizationEncoding",
    "TensorType",
    "TensorValue",
    "Weight",
    "ops",
]
