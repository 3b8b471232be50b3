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


def _qrt() -> Dialect:
    from quantir.dialects.qrt import Qrt

    return Qrt


def _amx() -> Dialect:
    from quantir.dialects.amx import Amx

    return Amx


def quantir_dialects() -> dict[str, Callable[[], Dialect]]:
    # amx: upstream MLIR's dialect (xDSL has none), for the CPU's AMX kernels.
    return {"quant": _quant, "qnn": _qnn, "qrt": _qrt, "amx": _amx}


def _pass(module: str, cls: str) -> Callable[[], type[ModulePass]]:
    def load() -> type[ModulePass]:
        import importlib

        return getattr(importlib.import_module(f"quantir.compiler.transforms.{module}"), cls)

    return load


# flag -> (module under compiler/transforms, class); each module is named after its flag.
_PASSES = {
    "quantir-bufferize": ("quantir_bufferize", "QuantirBufferizePass"),
    "lower-quant-to-loops": ("lower_quant_to_loops", "LowerQuantToLoopsPass"),
    "lower-qnn-to-loops": ("lower_qnn_to_loops", "LowerQnnToLoopsPass"),
    "outline-kernels": ("outline_kernels", "OutlineKernelsPass"),
    "share-launches": ("share_launches", "ShareLaunchesPass"),
    "hoist-loop-constants": ("hoist_loop_constants", "HoistLoopConstantsPass"),
    "gpu-map-kernels": ("gpu_map_kernels", "GpuMapKernelsPass"),
    "convert-qrt-to-upstream": ("convert_qrt_to_upstream", "ConvertQrtToUpstreamPass"),
}


def _pipeline_pass(cls: str) -> Callable[[], type[ModulePass]]:
    def load() -> type[ModulePass]:
        from quantir.compiler import pipeline

        return getattr(pipeline, cls)

    return load


def quantir_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    passes = {flag: _pass(module, cls) for flag, (module, cls) in _PASSES.items()}
    passes["quantir-cpu"] = _pipeline_pass("QuantirCpuPass")
    passes["quantir-cpu-exact"] = _pipeline_pass("QuantirCpuExactPass")
    passes["quantir-cpu-scalar"] = _pipeline_pass("QuantirCpuScalarPass")
    passes["quantir-gpu"] = _pipeline_pass("QuantirGpuPass")
    return passes


def _target(cls: str) -> Callable[[], type[Target]]:
    def load() -> type[Target]:
        from quantir.compiler import targets

        return getattr(targets, cls)

    return load


def quantir_targets() -> dict[str, Callable[[], type[Target]]]:
    """Targets under the names quantir-opt shows them (`-t llvm`, `-t ptx`)."""
    return {"llvm": _target("LLVMTarget"), "ptx": _target("PTXTarget")}


def plugin_targets() -> dict[str, Callable[[], type[Target]]]:
    """The same targets under the names they have in plain xdsl-opt (`-t quantir-llvm`)."""
    return {
        "quantir-llvm": _target("QuantirLLVMTarget"),
        "quantir-ptx": _target("QuantirPTXTarget"),
    }


def pass_summaries() -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """quantir's passes as (flag, summary) and named pipelines as (name, summary, passes).

    The summary is the first line of the pass class's docstring. Loads every pass.
    """
    from quantir.compiler.pipeline import PIPELINES

    passes, pipelines = [], []
    for flag, load in quantir_passes().items():
        doc = (load().__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else ""
        if flag in PIPELINES:
            pipelines.append((flag, summary, PIPELINES[flag]))
        else:
            passes.append((flag, summary))
    return passes, pipelines
