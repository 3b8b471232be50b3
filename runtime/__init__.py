"""Running compiled code: the JIT, devices, weight files, the eager API and the commands.

The public entry points, importable from here:

- `dequantize(weight)` / `dequantize(encoding, packed)`: the float32 values
  of a packed weight, bit-identical to ggml for GGUF (`quantir.runtime.api`);
- `qmatmul(weight, x)` / `qmatmul(encoding, x, packed)`: `x @ W.T` straight
  from the packed weight (`quantir.runtime.api`);
- `gather(weight, indices)`: rows of a packed table (token embeddings) by
  index, dequantized bit-identically to ggml (`quantir.runtime.api`);
- `quantize(encoding, weights)`: float weights to packed GGUF blocks, the
  bytes ggml's reference quantizers write (`quantir.runtime.quantize`);
- `compile_graph(graph, device="cpu")`: compiles a graph built with
  `quantir.compiler.graph` into a callable `CompiledGraph`
  (`quantir.runtime.compiled_graph`, which documents the accepted weights).

Every error quantir raises about its input is a `QuantirError` (README.md,
"Errors"); the subclasses by kind are importable from here too.

A `weight` is a `GGUFTensor` (`quantir.runtime.gguf.open_gguf(path).tensor(name)`)
or a `GPTQLinear` (`quantir.runtime.gptq`): each knows its encoding and config.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantir.compiler.diagnostics import UserError
    from quantir.dialects.errors import QuantirError
    from quantir.runtime.api import dequantize, gather, qmatmul
    from quantir.runtime.buffers import BufferError
    from quantir.runtime.compiled_graph import (
        CompiledGraph,
        DeviceUnavailableError,
        compile_graph,
    )
    from quantir.runtime.gguf.errors import GGUFError
    from quantir.runtime.gptq.layer import GPTQFormatError
    from quantir.runtime.quantize import quantize
    from quantir.runtime.weight_binding import MissingWeightError, WeightMismatchError

__all__ = [
    "BufferError",
    "CompiledGraph",
    "DeviceUnavailableError",
    "GGUFError",
    "GPTQFormatError",
    "MissingWeightError",
    "QuantirError",
    "UserError",
    "WeightMismatchError",
    "compile_graph",
    "dequantize",
    "gather",
    "qmatmul",
    "quantize",
]

# name -> the module that defines it. Loaded on first use: the compiler and
# LLVM take about a second to import, which commands that only read weight
# files (quantir inspect) should not pay.
_HOMES = {
    "CompiledGraph": "quantir.runtime.compiled_graph",
    "DeviceUnavailableError": "quantir.runtime.compiled_graph",
    "compile_graph": "quantir.runtime.compiled_graph",
    "QuantirError": "quantir.dialects.errors",
    "UserError": "quantir.compiler.diagnostics",
    "BufferError": "quantir.runtime.buffers",
    "WeightMismatchError": "quantir.runtime.weight_binding",
    "MissingWeightError": "quantir.runtime.weight_binding",
    "GGUFError": "quantir.runtime.gguf.errors",
    "GPTQFormatError": "quantir.runtime.gptq.layer",
    "dequantize": "quantir.runtime.api",
    "gather": "quantir.runtime.api",
    "qmatmul": "quantir.runtime.api",
    "quantize": "quantir.runtime.quantize",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(home)
    if name == "quantize":
        # Importing the subpackage quantir.runtime.quantize binds its name here
        # to the subpackage, which is callable as the function (see its
        # __init__): return it, so that every spelling gives the same object.
        return module
    return getattr(module, name)
