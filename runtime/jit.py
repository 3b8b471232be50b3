"""Compile graph IR for a device, with in-process and on-disk caching.

`compile_source` takes MLIR text (or a module), runs the target's pipeline,
translates the kernels, and produces machine code (CPU) or PTX (GPU). The
result is cached in this process and on disk (see `runtime.cache`).
`load_program` binds one function of a compiled module to a device.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
from dataclasses import dataclass, field
from importlib.metadata import version

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from quantir.compiler.backend import cpu_codegen as cpu_backend
from quantir.compiler.backend.calling_convention import KernelSignature
from quantir.compiler.backend.llvm_translation import translate_module
from quantir.compiler.context import make_context
from quantir.compiler.diagnostics import (
    UserError,
    format_parse_error,
    parse_located,
    verify_located,
)
from quantir.compiler.pipeline import lower
from quantir.dialects.qrt import KERNEL_ATTR
from quantir.runtime import cache
from quantir.runtime.host_plan import HostPlan
from quantir.runtime.program import CpuProgramDevice, Program

CACHE_FORMAT = "1"


@functools.cache
def _versions() -> str:
    """What generated code depends on besides its input: tool versions and the
    compiler's own source (so an edited checkout never reuses stale kernels)."""
    parts = []
    for pkg in ("quantir", "xdsl", "llvmlite"):
        try:
            parts.append(f"{pkg}={version(pkg)}")
        except Exception:  # not installed as a distribution (a source checkout)
            parts.append(f"{pkg}=?")
    parts.append(f"source={_compiler_fingerprint()}")
    return ";".join(parts)


def _compiler_fingerprint() -> str:
    import hashlib
    from pathlib import Path

    import quantir.compiler
    import quantir.dialects

    h = hashlib.sha256()
    for package in (quantir.compiler, quantir.dialects):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class CompiledModule:
    target: str
    host_mlir: str
    signatures: dict[str, KernelSignature]
    object_code: bytes = b""  # CPU
    ptx: str = ""  # GPU
    _plans: dict[str, HostPlan] = field(default_factory=dict, repr=False, compare=False)
    _kernels: object = field(default=None, repr=False, compare=False)

    def plan(self, function: str | None) -> HostPlan:
        """The host plan of `function` (the only function when None), built once."""
        key = function or ""
        if key not in self._plans:
            hosts = host_functions(self)
            if function is None:
                if len(hosts) != 1:
                    raise UserError(
                        f"the module has {len(hosts)} functions ({', '.join(sorted(hosts))}): "
                        "say which one to run"
                    )
                function = next(iter(hosts))
            if function not in hosts:
                raise UserError(
                    f"no function @{function} in the module "
                    f"(it has: {', '.join(sorted(hosts)) or 'none'})"
                )
            self._plans[key] = HostPlan.build(hosts[function])
        return self._plans[key]

    def to_bytes(self) -> bytes:
        meta = {
            "target": self.target,
            "host_mlir": self.host_mlir,
            "ptx": self.ptx,
            "signatures": {
                n: [[k, list(d)] for k, d in s.params] for n, s in self.signatures.items()
            },
        }
        blob = json.dumps(meta).encode()
        return struct.pack("<Q", len(blob)) + blob + self.object_code

    @staticmethod
    def from_bytes(data: bytes) -> CompiledModule:
        (n,) = struct.unpack_from("<Q", data)
        meta = json.loads(data[8 : 8 + n])
        sigs = {
            name: KernelSignature(name, tuple((k, tuple(d)) for k, d in params))
            for name, params in meta["signatures"].items()
        }
        return CompiledModule(meta["target"], meta["host_mlir"], sigs, data[8 + n :], meta["ptx"])


_memory: dict[str, CompiledModule] = {}
_keys: dict[tuple, str] = {}  # (text, target, arch, pipeline) -> cache key, to skip rehashing
_lock = threading.RLock()


def _print(module: ModuleOp) -> str:
    import io

    out = io.StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue()


def parse_source(source: str | ModuleOp, name: str = "<graph>") -> ModuleOp:
    """Parse and verify MLIR text; errors are UserError with a source location."""
    if isinstance(source, ModuleOp):
        verify_located(source)
        return source
    from xdsl.utils.exceptions import ParseError

    try:
        module = parse_located(make_context(), source, name)
    except ParseError as e:
        raise UserError(format_parse_error(e)) from None
    verify_located(module)
    return module


def target_key(target: str, gpu_arch: str = "") -> str:
    if target == "cpu":
        return cpu_backend.host_target().key
    return f"nvptx|{gpu_arch}"


def compile_source(
    source: str | ModuleOp,
    target: str = "cpu",
    *,
    gpu_arch: str = "sm_90",
    name: str = "<graph>",
    pipeline: str | None = None,
) -> CompiledModule:
    """Compile a graph module for `target` ("cpu" or "gpu"), using the caches.

    `pipeline` overrides the target's named pipeline (e.g. "quantir-cpu-scalar").
    """
    text = source if isinstance(source, str) else _print(source)
    memo = (text, target, gpu_arch, pipeline)
    key = _keys.get(memo)
    if key is None:
        key = cache.make_key(
            CACHE_FORMAT, _versions(), target, target_key(target, gpu_arch), pipeline or "", text
        )
        _keys[memo] = key
    with _lock:
        hit = _memory.get(key)
    if hit is not None:
        return hit
    payload = cache.load(key)
    if payload is not None:
        try:
            compiled = CompiledModule.from_bytes(payload)
        except (ValueError, KeyError, struct.error):
            compiled = None  # unreadable entry: rebuild below
        if compiled is not None:
            with _lock:
                _memory[key] = compiled
            return compiled
    module = parse_source(source, name)
    compiled = _build(module, target, gpu_arch, pipeline)
    cache.store(key, compiled.to_bytes())
    with _lock:
        _memory[key] = compiled
    return compiled


def _build(module: ModuleOp, target: str, gpu_arch: str, pipeline: str | None) -> CompiledModule:
    lowered = lower(module, "cpu" if target == "cpu" else "gpu", pipeline=pipeline)
    host = ModuleOp([])
    for op in list(lowered.ops):
        if isinstance(op, func.FuncOp) and KERNEL_ATTR not in op.attributes:
            host.body.block.add_op(op.clone())
    host_text = _print(host)
    if target == "cpu":
        ir_module, sigs = translate_module(lowered, cpu_backend.target_info())
        obj = cpu_backend.compile_object(ir_module)
        return CompiledModule("cpu", host_text, sigs, object_code=obj)
    from quantir.compiler.backend import nvptx

    ir_module, sigs = translate_module(lowered, nvptx.target_info(gpu_arch))
    return CompiledModule("gpu", host_text, sigs, ptx=nvptx.emit_ptx(ir_module, gpu_arch))


def host_functions(compiled: CompiledModule) -> dict[str, func.FuncOp]:
    module = parse_located(make_context(), compiled.host_mlir, "<compiled>")
    return {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}


def load_program(
    compiled: CompiledModule, function: str | None = None, *, threads: int = 1, device=None
) -> Program:
    """Bind `function` (the only one when None) of a compiled module to a device."""
    plan = compiled.plan(function)
    if compiled.target == "cpu":
        kernels = _cpu_kernels(compiled)
        return Program(plan, compiled.signatures, CpuProgramDevice(kernels, threads))
    if device is None:
        from quantir.runtime.cuda import GpuDevice

        device = GpuDevice.get(0).bind(compiled.ptx)
    return Program(plan, compiled.signatures, device)


def _cpu_kernels(compiled: CompiledModule):
    """The module's machine code, mapped once per compiled module."""
    from quantir.runtime.cpu_threads import CpuKernels

    if compiled._kernels is None:
        with _lock:
            if compiled._kernels is None:
                compiled._kernels = CpuKernels(
                    cpu_backend.LoadedObject(compiled.object_code), compiled.signatures
                )
    return compiled._kernels
