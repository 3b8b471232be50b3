"""Build quantir graphs from Python, compile them, and run them.

The API mirrors a well-known graph compiler's Python graph API::

    from quantir.compiler.graph import DType, Graph, TensorType, Weight, ops
    from quantir.dialects.encoding import QuantizationEncoding

    with Graph("mlp", input_types=[TensorType(DType.float32, ["batch", 4096])]) as g:
        x = g.inputs[0]
        w = g.add_weight(Weight("w", DType.uint8, [4096, 4096],
                                quantization_encoding=QuantizationEncoding.Q4_K))
        g.output(ops.qmatmul(QuantizationEncoding.Q4_K, None, x, w))

    print(g)                                   # MLIR text (quant/qnn tensor ops)
    y, = g.compile()(x_array, weights={"w": packed_bytes})

The printed IR is exactly what a hand-written graph file holds, so a built
graph can be saved and run with `quantir-run`.
"""

from quantir.compiler.graph import ops
from quantir.compiler.graph.builder import Graph
from quantir.compiler.graph.compiled import (
    CompiledGraph,
    DeviceUnavailableError,
    compile_on_device,
)
from quantir.compiler.graph.types import Dim, TensorType
from quantir.compiler.graph.value import TensorValue
from quantir.compiler.graph.weight_sources import (
    MissingWeightError,
    WeightMismatchError,
    bind_weights,
    open_weight_source,
    weight_declarations,
)
from quantir.dialects.encoding import QuantizationConfig, QuantizationEncoding
from quantir.dialects.weight import DeviceRef, DType, Weight

__all__ = [
    "CompiledGraph",
    "DType",
    "DeviceRef",
    "DeviceUnavailableError",
    "Dim",
    "Graph",
    "MissingWeightError",
    "QuantizationConfig",
    "QuantizationEncoding",
    "TensorType",
    "TensorValue",
    "Weight",
    "WeightMismatchError",
    "bind_weights",
    "compile_on_device",
    "open_weight_source",
    "ops",
    "weight_declarations",
]
