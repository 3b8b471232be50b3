"""quantir's entry in xDSL's plugin registry (the `xdsl.universe` entry point).

With quantir installed, a plain `xdsl-opt` sees the quant and qnn dialects,
quantir's passes, and its targets as `-t quantir-llvm` / `-t quantir-ptx`
(xDSL already owns the names `llvm`; a clash would be an error).
"""

from xdsl.universe import Universe

from quantir.compiler.registry import quantir_dialects, quantir_passes, quantir_targets

QUANTIR_UNIVERSE = Universe(
    all_dialects=quantir_dialects(),
    all_passes=quantir_passes(),
    all_targets={f"quantir-{name}": factory for name, factory in quantir_targets().items()},
)
