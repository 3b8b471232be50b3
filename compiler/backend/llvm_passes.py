"""What the CPU and NVPTX backends share: one lock and the O3 pipeline.

llvmlite's parsing, pass managers and code emission use LLVM's global
context, which is not thread-safe: every backend takes `LLVM_LOCK` around
them, so a CPU compile and a GPU compile in two threads never overlap. Work
in an LLVM context and target machine of its own (the CPU backend's
`ObjectCompiler`) needs no lock of ours. llvmlite itself still serializes
every call into LLVM through one lock of its own (`llvmlite.binding.ffi`),
so two such compiles do not run at once either; what runs meanwhile is the
caller's Python work, since a call releases the GIL (building `llvmlite.ir`
modules is pure Python).
"""

from __future__ import annotations

import contextlib
import threading

import llvmlite.binding as llvm
import llvmlite.ir as ir

LLVM_LOCK = threading.RLock()


def optimize_o3(
    module: ir.Module | str,
    tm: llvm.TargetMachine,
    triple: str,
    *,
    vectorize: bool,
    context: llvm.ContextRef | None = None,
) -> llvm.ModuleRef:
    """Parse and verify LLVM IR, then run LLVM's O3 pipeline for `tm`.

    With a `context` of its own (and a target machine of its own) the caller
    may run this in several threads at once; without one it uses LLVM's
    global context, under `LLVM_LOCK`."""
    text = str(module)
    with contextlib.nullcontext() if context is not None else LLVM_LOCK:
        ref = llvm.parse_assembly(text, context=context)
        ref.verify()
        ref.triple = triple
        ref.data_layout = str(tm.target_data)
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        if vectorize:
            pto.loop_vectorization = True
            pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(ref, pb)
    return ref
