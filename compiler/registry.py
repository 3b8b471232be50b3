"""Everything quantir adds to an xDSL context: dialects, passes and targets.

Factories are lazy (imported on first use), as xDSL's own registries are, so
that `quantir-opt --help` and plugin discovery stay fast.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.utils.target import Target


def _quant() -> Dialect:
    from quantir.dialects.quant import Quant

    return Quant


def _qnn() -> Dialect:
    from quantir.dialects.qnn import Qnn

    return Qnn


def quantir_dialects() -> dict[str, Callable[[], Dialect]]:
    return {"quant": _quant, "qnn": _qnn}


def quantir_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    return {}


def quantir_targets() -> dict[str, Callable[[], type[Target]]]:
    """Targets under the names quantir-opt shows them (`-t llvm`, `-t ptx`)."""
    return {}
