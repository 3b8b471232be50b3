"""Host CPU code generation: optimize LLVM IR for the host at O3 and load it with MCJIT.

Compilation produces an object file (cacheable bytes); loading maps it into
an MCJIT engine and returns the entry address of each kernel. Floating-point
contraction stays off by default (LLVM's `Standard` fusion only fuses
explicit `fmuladd`): dequantize kernels carry no fast-math flags and stay
bit-identical to ggml, while matmul kernels opt in per instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import llvmlite.binding as llvm
import llvmlite.ir as ir

from quantir.compiler.backend.llvm.context import TargetInfo
from quantir.compiler.backend.llvm.int_dot import parse_features
from quantir.compiler.backend.llvm_passes import LLVM_LOCK, optimize_o3

_initialized = False


def _init() -> None:
    global _initialized
    with LLVM_LOCK:
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
        """Identifies the generated code: what a cache of object files is keyed by
        (with whether this process may use AMX tiles: code built with them is
        never loaded where they would fault)."""
        llvm_version = ".".join(map(str, llvm.llvm_version_info))
        amx = "amx" if amx_usable() else "no-amx"
        return f"{self.triple}|{self.cpu}|{self.features}|{amx}|llvm{llvm_version}"


# Tuning only (no new instructions): LLVM's machine combiner otherwise splits
# chained `vpdpwssd` (each `qrt.dot_u8i8_scaled` of a block adds into the
# previous one) into `vpmaddwd` + `vpaddd` to shorten the accumulator's
# latency: one more vector uop per dot, where these kernels are bound by
# vector uops, not by that latency (Q3_K at M=1: 2-3% on Sapphire Rapids).
_VNNI_TUNING = ",+fast-dpwssd"


@cache
def host_target() -> HostTarget:
    _init()
    features = llvm.get_host_cpu_features().flatten()
    if {"avx512vnni", "avxvnni"} & parse_features(features):
        features += _VNNI_TUNING
    return HostTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), features)


AMX_FEATURES = frozenset({"amx-tile", "amx-int8"})

_XFEATURE_XTILEDATA = 18
_ARCH_REQ_XCOMP_PERM = 0x1023
_SYS_ARCH_PRCTL_X86_64 = 158


@cache
def amx_usable() -> bool:
    """Whether this process may run AMX tile code: the host CPU has AMX-TILE and
    AMX-INT8, and (on Linux) the kernel granted the process the tile state.

    Linux hands out the 8 KB tile state only on request (arch_prctl
    ARCH_REQ_XCOMP_PERM); the first tile instruction of a process that did not
    ask is killed. The request is made once, here, before any AMX kernel is
    built or loaded (the kernel cache key includes this answer); it covers
    every thread of the process. Set QUANTIR_NO_AMX=1 to keep AMX off.
    """
    import os
    import platform
    import sys

    if os.environ.get("QUANTIR_NO_AMX") or not AMX_FEATURES <= parse_features(
        host_target().features
    ):
        return False
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(_SYS_ARCH_PRCTL_X86_64, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA)
    return rc == 0


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


def target_info() -> TargetInfo:
    """What the LLVM translation needs to know about the host."""
    host = host_target()
    features = parse_features(host.features)
    if not amx_usable():
        features -= AMX_FEATURES  # never emit tile code this process may not run
    return TargetInfo("cpu", host.triple, data_layout(), features)


def optimize(module: ir.Module | str) -> llvm.ModuleRef:
    """Parse and verify LLVM IR, then run the O3 pipeline (vectorizers on) for the host."""
    _init()
    return optimize_o3(module, _target_machine(), host_target().triple, vectorize=True)


def compile_object(module: ir.Module | str) -> bytes:
    """Optimized machine code for the host, as an object file."""
    ref = optimize(module)
    with LLVM_LOCK:
        return _target_machine().emit_object(ref)


def _compile_isolated(module: ir.Module | str) -> bytes:
    """`compile_object` in an LLVM context and target machine of its own (no lock)."""
    _init()
    tm = _new_target_machine()
    ref = optimize_o3(
        module, tm, host_target().triple, vectorize=True, context=llvm.create_context()
    )
    return tm.emit_object(ref)


class ObjectCompiler:
    """Compiles modules to object files as they are handed over.

    With `threads` > 1 they compile in worker threads, each in an LLVM context
    of its own, while the caller goes on (translating the next kernel, which
    is pure Python: llvmlite's calls release the GIL). llvmlite runs one call
    into LLVM at a time (a lock of its own), so the workers take turns; the
    gain is the overlap with the caller. With `threads` <= 1 each compiles at
    once in the caller's thread. The objects are the same either way. Leaving
    the `with` block waits for the compiles still running.
    """

    def __init__(self, threads: int = 1) -> None:
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def submit(self, module: ir.Module | str) -> Future[bytes]:
        if self._pool is not None:
            return self._pool.submit(_compile_isolated, module)
        done: Future[bytes] = Future()
        done.set_result(compile_object(module))
        return done

    def __enter__(self) -> ObjectCompiler:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def compile_objects(modules: Sequence[ir.Module | str], threads: int = 1) -> list[bytes]:
    """`compile_object` of each module, up to `threads` at a time (each in an
    LLVM context of its own); the objects are the same as one at a time."""
    with ObjectCompiler(min(threads, len(modules))) as compiler:
        futures = [compiler.submit(m) for m in modules]
        return [f.result() for f in futures]


class LoadedObject:
    """Object files mapped into executable memory; kernels looked up by name."""

    def __init__(self, obj: bytes | Sequence[bytes]):
        _init()
        objects = [obj] if isinstance(obj, bytes) else list(obj)
        with LLVM_LOCK:
            # An engine takes ownership of its target machine and destroys it
            # with itself: each engine gets its own.
            self._engine = llvm.create_mcjit_compiler(
                llvm.parse_assembly(""), _new_target_machine()
            )
            for data in objects:
                self._engine.add_object_file(llvm.ObjectFileRef.from_data(data))
            self._engine.finalize_object()

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise KeyError(f"compiled code has no function named {name!r}")
        return addr
