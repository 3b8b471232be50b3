"""NVIDIA GPU code generation: LLVM IR to PTX through llvmlite's NVPTX target.

PTX is emitted per architecture (`sm_80`, `sm_90`, ...): PTX for sm_90 does
not assemble for sm_80. Floating-point contraction stays off (LLVM's
`Standard` fusion): NVPTX then emits `mul.rn`/`add.rn`, which ptxas may not
fuse, so dequantize stays bit-identical on the GPU too.
"""

from __future__ import annotations

import re
from functools import cache

import llvmlite.binding as llvm
import llvmlite.ir as ir

from quantir.compiler.backend.llvm.context import TargetInfo
from quantir.compiler.backend.llvm_passes import LLVM_LOCK, optimize_o3

TRIPLE = "nvptx64-nvidia-cuda"
_initialized = False


def _init() -> None:
    global _initialized
    with LLVM_LOCK:
        if not _initialized:
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            _initialized = True


def check_arch(arch: str) -> str:
    if not re.fullmatch(r"sm_\d{2,3}[a-z]?", arch):
        raise ValueError(f"GPU architecture must look like 'sm_90', got {arch!r}")
    return arch


@cache
def _target_machine(arch: str) -> llvm.TargetMachine:
    _init()
    target = llvm.Target.from_triple(TRIPLE)
    return target.create_target_machine(cpu=check_arch(arch), opt=3)


def target_info(arch: str = "sm_90") -> TargetInfo:
    return TargetInfo("nvptx", TRIPLE, str(_target_machine(arch).target_data))


def optimize(module: ir.Module | str, arch: str = "sm_90") -> llvm.ModuleRef:
    return optimize_o3(module, _target_machine(arch), TRIPLE, vectorize=False)


def emit_ptx(module: ir.Module | str, arch: str = "sm_90") -> str:
    """PTX assembly for `arch`."""
    ref = optimize(module, arch)
    with LLVM_LOCK:
        return _target_machine(arch).emit_assembly(ref)
