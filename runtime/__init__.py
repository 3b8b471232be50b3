"""Running compiled code: the JIT, devices, weight files, the eager API and the commands.

`compile_graph(graph, device="cpu")` compiles a graph built with
`quantir.compiler.graph` and returns a callable; `CompiledGraph` documents
what it accepts as weights. Both live in `quantir.runtime.compiled_graph`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantir.runtime.compiled_graph import (
        CompiledGraph,
        DeviceUnavailableError,
        compile_graph,
    )

__all__ = ["CompiledGraph", "DeviceUnavailableError", "compile_graph"]


def __getattr__(name: str) -> object:
    # Loaded on first use: the compiler and LLVM take about a second to import,
    # which commands that only read weight files (quantir inspect) should not pay.
    if name in __all__:
        return getattr(importlib.import_module("quantir.runtime.compiled_graph"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
