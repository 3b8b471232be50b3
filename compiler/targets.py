"""`-t llvm` and `-t ptx`: print the LLVM IR or PTX of a lowered module.

Run a pipeline first (`-p quantir-cpu` or `-p quantir-gpu`): the targets
translate kernels (or, for a module without kernels, every function on
buffers). `-t llvm` translates for the module's target (`qrt.target`, set by
the pipeline; the host CPU by default); `-t llvm{optimize=true}` prints the
IR after the O3 pipeline. `-t ptx{arch=sm_80}` selects the GPU architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.utils.exceptions import DiagnosticException
from xdsl.utils.target import Target

from quantir.compiler.backend.llvm_translation import TranslationError, translate_module
from quantir.dialects.qrt import TARGET_ATTR


def _module_target(module: ModuleOp) -> str:
    attr = module.attributes.get(TARGET_ATTR)
    return attr.data if isinstance(attr, StringAttr) else "cpu"


def _check_lowered(module: ModuleOp) -> None:
    for op in module.walk():
        if op.name.startswith(("quant.", "qnn.")):
            raise DiagnosticException(
                f"'{op.name}' is not lowered yet: run a pipeline first (-p quantir-cpu or "
                "-p quantir-gpu)"
            )


@dataclass(frozen=True)
class LLVMTarget(Target):
    name = "llvm"
    optimize: bool = False
    arch: str = "sm_90"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        _check_lowered(module)
        try:
            if _module_target(module) == "nvptx":
                from quantir.compiler.backend import nvptx

                ir_module, _ = translate_module(module, nvptx.target_info(self.arch))
                text = str(nvptx.optimize(ir_module, self.arch) if self.optimize else ir_module)
            else:
                from quantir.compiler.backend import cpu_codegen

                info = cpu_codegen.target_info()
                ir_module, _ = translate_module(module, info)
                text = str(cpu_codegen.optimize(ir_module) if self.optimize else ir_module)
        except TranslationError as e:
            raise DiagnosticException(f"cannot translate to LLVM IR: {e}") from None
        output.write(text)


@dataclass(frozen=True)
class PTXTarget(Target):
    name = "ptx"
    arch: str = "sm_90"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        _check_lowered(module)
        if _module_target(module) != "nvptx":
            raise DiagnosticException("-t ptx needs a module lowered for the GPU (-p quantir-gpu)")
        from quantir.compiler.backend import nvptx

        try:
            ir_module, _ = translate_module(module, nvptx.target_info(self.arch))
            output.write(nvptx.emit_ptx(ir_module, self.arch))
        except TranslationError as e:
            raise DiagnosticException(f"cannot translate to PTX: {e}") from None


# Plain xdsl-opt already has an `llvm` target: through the plugin (universe.py)
# quantir's targets take prefixed names. xDSL checks that `-t NAME` is the
# target class's own `name`, so each prefixed name is a class of its own.
@dataclass(frozen=True)
class QuantirLLVMTarget(LLVMTarget):
    name = "quantir-llvm"


@dataclass(frozen=True)
class QuantirPTXTarget(PTXTarget):
    name = "quantir-ptx"
