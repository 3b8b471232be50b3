"""CPU code generation: optimize LLVM IR for the host at O3 and load it with MCJIT.

Compilation produces an object file (cacheable bytes); loading maps it into
an MCJIT engine and returns the entry address of each kernel. Floating-point
contraction stays off by default (LLVM's `Standard` fusion only fuses
explicit `fmuladd`): dequantize kernels carry no fast-math flags and stay
bit-identical to ggml, while matmul kernels opt in per instruction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

import llvmlite.binding as llvm
import llvmlite.ir as ir

_init_lock = threading.Lock()
_initialized = False


def _init() -> None:
    global _initialized
    with _init_lock:
        if not _initialized:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialized = True


@dataclass(frozen=True)
class HostTarget:
    triple: str
    cpu: str
    features: str

    @property
    def key(self) -> str:
        """Identifies the generated code: what a cache of object files is keyed by."""
        llvm_version = ".".join(map(str, llvm.llvm_version_info))
        return f"{self.triple}|{self.cpu}|{self.features}|llvm{llvm_version}"


@cache
def host_target() -> HostTarget:
    _init()
    return HostTarget(
        llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    )


def _new_target_machine() -> llvm.TargetMachine:
    host = host_target()
    target = llvm.Target.from_triple(host.triple)
    return target.create_target_machine(
        cpu=host.cpu, features=host.features, opt=3, codemodel="jitdefault"
    )


@cache
def _target_machine() -> llvm.TargetMachine:
    """The target machine used to optimize and emit code (never given to an engine)."""
    return _new_target_machine()


def data_layout() -> str:
    return str(_target_machine().target_data)


def target_info():
    """What the LLVM translation needs to know about the host."""
    from quantir.compiler.backend.llvm_translation import TargetInfo

    return TargetInfo("cpu", host_target().triple, data_layout())


_compile_lock = threading.Lock()


def optimize(module: ir.Module | str) -> llvm.ModuleRef:
    """Parse and verify LLVM IR, then run the O3 pipeline (vectorizers on) for the host."""
    _init()
    text = str(module)
    with _compile_lock:  # LLVM's global state is not thread-safe during compilation
        ref = llvm.parse_assembly(text)
        ref.verify()
        tm = _target_machine()
        ref.triple = host_target().triple
        ref.data_layout = str(tm.target_data)
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(ref, pb)
    return ref


def compile_object(module: ir.Module | str) -> bytes:
    """Optimized machine code for the host, as an object file."""
    ref = optimize(module)
    with _compile_lock:
        return _target_machine().emit_object(ref)


def assembly(module: ir.Module | str) -> str:
    ref = optimize(module)
    with _compile_lock:
        return _target_machine().emit_assembly(ref)


class LoadedObject:
    """An object file mapped into executable memory; kernels looked up by name."""

    def __init__(self, obj: bytes):
        _init()
        with _compile_lock:
            # An engine takes ownership of its target machine and destroys it
            # with itself: each engine gets its own.
            self._engine = llvm.create_mcjit_compiler(
                llvm.parse_assembly(""), _new_target_machine()
            )
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self._engine.finalize_object()

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise KeyError(f"compiled code has no function named {name!r}")
        return addr
