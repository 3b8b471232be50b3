"""quantir's entry in xDSL's plugin registry (the `xdsl.universe` entry point).

With quantir installed, a plain `xdsl-opt` sees the quant and qnn dialects,
quantir's passes, and its targets as `-t quantir-llvm` / `-t quantir-ptx`
(xDSL already owns the names `llvm`; a clash would be an error).
"""

from xdsl.universe import Universe

from quantir.compiler.registry import plugin_targets, quantir_dialects, quantir_passes

QUANTIR_UNIVERSE = Universe(
    all_dialects=quantir_dialects(),
    all_passes=quantir_passes(),
    all_targets=plugin_targets(),
)
