"""quantir's named pipelines, and `lower`, which runs one on a module.

`quantir-cpu`, `quantir-cpu-scalar` and `quantir-gpu` are the pass lists from
graph IR to outlined kernels. `quantir-opt -p quantir-cpu` expands a name in
place, so `--print-between-passes` shows every stage; plain `xdsl-opt` sees
each name as one pass (`QuantirCpuPass`, ...). `lower(module, target)` runs
the target's pipeline on a copy of the module; the backends
(`quantir.compiler.backend`) then translate the kernels to machine code (CPU)
or PTX (GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass, PassPipeline

from quantir.compiler.context import make_context
from quantir.compiler.transforms.convert_qrt_to_upstream import convert_to_upstream
from quantir.dialects.qrt import TARGET_ATTR

# lower-quant-to-loops{outline=true} builds the loops of each distinct quant
# op once, outlined into kernels that every equal op launches; outline-kernels
# then outlines the rest (qnn's nests). Both come before canonicalize and cse,
# so the cleanup (most of the lowering's time) runs once per distinct kernel,
# not once per op; share-launches before them leaves one quantization of each
# x per activation format in the host function (fewer host ops to clean up,
# fewer launches to run), and hoist-loop-constants spares canonicalize one
# sweep of the module per loop level.
_SCALAR_LOWERING = (
    "quantir-bufferize,lower-quant-to-loops{vectorize=false m_tile=1 outline=true},"
    "lower-qnn-to-loops{vectorize=false},outline-kernels,share-launches,hoist-loop-constants,canonicalize,cse"
)

UPSTREAM = "convert-qrt-to-upstream"
"""The last pass of every named pipeline: what it leaves is upstream MLIR."""


def cpu_lowering(int8: bool = True, amx: str = "auto") -> str:
    """The CPU pipeline's passes, with the qmatmul options spelled out (`amx`: on, off, auto)."""
    return (
        f"quantir-bufferize,lower-quant-to-loops{{int8={str(int8).lower()} amx={amx} "
        "outline=true},"
        "lower-qnn-to-loops,outline-kernels,share-launches,hoist-loop-constants,"
        "canonicalize,cse," + UPSTREAM
    )


PIPELINES: dict[str, str] = {
    # Integer dot products with x quantized to int8 blocks (the fast default).
    # AMX tiles for prefill where this process may use them.
    "quantir-cpu": cpu_lowering(int8=True, amx="auto"),
    # Weights unpacked to float against exact x (the exact path).
    "quantir-cpu-exact": cpu_lowering(int8=False, amx="off"),
    # The GPU's scalar lane loops, run on the CPU: the lowering the GPU
    # shares, testable without a GPU.
    "quantir-cpu-scalar": _SCALAR_LOWERING + "," + UPSTREAM,
    "quantir-gpu": _SCALAR_LOWERING + ",gpu-map-kernels,canonicalize,cse," + UPSTREAM,
}
"""Named pipelines, as `-p` specs."""

_TARGETS = {
    "quantir-cpu": "cpu",
    "quantir-cpu-exact": "cpu",
    "quantir-cpu-scalar": "cpu",
    "quantir-gpu": "nvptx",
}
"""The code generator (the module's qrt.target) each named pipeline feeds."""


def named_pipeline_target(name: str) -> str | None:
    """The code generator ("cpu" or "nvptx") a named pipeline feeds; None for a pass list."""
    return _TARGETS.get(name.strip())


def named_pipelines(code_generator: str) -> list[str]:
    """The named pipelines that feed `code_generator` ("cpu" or "nvptx")."""
    return [name for name, feeds in _TARGETS.items() if feeds == code_generator]


def default_pipeline(target: str, exact: bool = False) -> str:
    """The named pipeline a target compiles with ("cpu" or "gpu").

    `exact` asks for weights dequantized to float and multiplied by exact x
    (on the CPU, "quantir-cpu-exact"); the default CPU pipeline quantizes x
    to int8 blocks and uses integer dot products. The GPU path is always exact.
    """
    if target == "cpu":
        return "quantir-cpu-exact" if exact else "quantir-cpu"
    return "quantir-gpu"


def expand_pipeline_spec(spec: str) -> str:
    """Replace every named pipeline in a `-p` spec by its passes."""
    out = []
    for part in _split_top_level(spec):
        out.append(PIPELINES.get(part.strip(), part))
    return ",".join(p for p in out if p)


def _split_top_level(spec: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def all_passes() -> dict:
    from xdsl.transforms import get_all_passes

    from quantir.compiler.registry import quantir_passes

    passes = dict(get_all_passes())
    passes.update(quantir_passes())
    return passes


def run_pipeline(ctx: Context, module: ModuleOp, name_or_spec: str) -> None:
    spec = expand_pipeline_spec(name_or_spec)
    PassPipeline.parse_spec(all_passes(), spec).apply(ctx, module)


@dataclass(frozen=True)
class _NamedPipelinePass(ModulePass):
    """A named pipeline as a single pass, for plain xdsl-opt (quantir-opt expands them)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        run_pipeline(ctx, op, self.name)
        op.attributes[TARGET_ATTR] = StringAttr(_TARGETS[self.name])


@dataclass(frozen=True)
class QuantirCpuPass(_NamedPipelinePass):
    """The CPU default: graph IR to kernels, qmatmul on int8-quantized x (qrt.dot_u8i8)."""

    name = "quantir-cpu"


@dataclass(frozen=True)
class QuantirCpuExactPass(_NamedPipelinePass):
    """The CPU float path: weights unpacked to float and multiplied by exact x."""

    name = "quantir-cpu-exact"


@dataclass(frozen=True)
class QuantirCpuScalarPass(_NamedPipelinePass):
    """The GPU's scalar lane loops, compiled for the CPU (tests the GPU lowering)."""

    name = "quantir-cpu-scalar"


@dataclass(frozen=True)
class QuantirGpuPass(_NamedPipelinePass):
    """Graph IR to thread-indexed GPU kernels, for -t ptx."""

    name = "quantir-gpu"


def lower(
    module: ModuleOp, target: str = "cpu", ctx: Context | None = None, pipeline: str | None = None
) -> ModuleOp:
    """Run the target's pipeline (or `pipeline`) on a copy of `module` and return the copy."""
    ctx = ctx or make_context()
    lowered = module.clone()
    default = default_pipeline(target)
    run_pipeline(ctx, lowered, pipeline or default)
    if not expand_pipeline_spec(pipeline or default).endswith(UPSTREAM):
        convert_to_upstream(lowered)  # a custom pass list ends in upstream MLIR too
    lowered.attributes[TARGET_ATTR] = StringAttr(_TARGETS[default])
    lowered.verify()  # a lowering bug must fail here, not in the LLVM translation
    return lowered
