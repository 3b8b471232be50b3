"""quantir's named pipelines and the compile driver built on them.

`quantir-cpu` and `quantir-gpu` are the pass lists from graph IR to outlined
kernels; `quantir-opt -p quantir-cpu` expands them in place, so
`--print-between-passes` shows every stage. `compile_module` runs a pipeline
and translates the kernels to machine code (CPU) or PTX (GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass, PassPipeline

from quantir.compiler.context import make_context
from quantir.dialects.qrt import TARGET_ATTR

PIPELINES: dict[str, str] = {
    "quantir-cpu": (
        "quantir-bufferize,lower-quant-to-loops,lower-qnn-to-loops,canonicalize,cse,outline-kernels"
    ),
    # The CPU pipeline with the GPU's scalar lane loops: runs the lowering the
    # GPU shares on the CPU, so it can be tested without a GPU.
    "quantir-cpu-scalar": (
        "quantir-bufferize,lower-quant-to-loops{vectorize=false m_tile=1},"
        "lower-qnn-to-loops{vectorize=false},canonicalize,cse,outline-kernels"
    ),
    "quantir-gpu": (
        "quantir-bufferize,lower-quant-to-loops{vectorize=false m_tile=1},"
        "lower-qnn-to-loops{vectorize=false},canonicalize,cse,outline-kernels,gpu-map-kernels,"
        "canonicalize,cse"
    ),
}
"""Named pipelines, as `-p` specs."""


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
class QuantirCpuPass(ModulePass):
    """The CPU pipeline as a single pass (`-p quantir-cpu` in plain xdsl-opt)."""

    name = "quantir-cpu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        run_pipeline(ctx, op, "quantir-cpu")
        op.attributes[TARGET_ATTR] = StringAttr("cpu")


@dataclass(frozen=True)
class QuantirGpuPass(ModulePass):
    """The GPU pipeline as a single pass (`-p quantir-gpu` in plain xdsl-opt)."""

    name = "quantir-gpu"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        run_pipeline(ctx, op, "quantir-gpu")
        op.attributes[TARGET_ATTR] = StringAttr("nvptx")


def lower(
    module: ModuleOp, target: str = "cpu", ctx: Context | None = None, pipeline: str | None = None
) -> ModuleOp:
    """Run the target's pipeline (or `pipeline`) on a copy of `module` and return the copy."""
    ctx = ctx or make_context()
    lowered = module.clone()
    if pipeline is None:
        pipeline = "quantir-cpu" if target == "cpu" else "quantir-gpu"
    run_pipeline(ctx, lowered, pipeline)
    lowered.attributes[TARGET_ATTR] = StringAttr("cpu" if target == "cpu" else "nvptx")
    lowered.verify()  # a lowering bug must fail here, not in the LLVM translation
    return lowered
