"""Compile graph IR for a device, with in-process and on-disk caching.

`compile_source` takes MLIR text (or a module), runs the target's pipeline,
translates the kernels, and produces machine code (CPU) or PTX (GPU). The
result is cached in this process and on disk (see `runtime.cache`).
`load_program` binds one function of a compiled module to a device.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import re
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.metadata import version

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer

from quantir.compiler.backend import cpu_codegen as cpu_backend
from quantir.compiler.backend.calling_convention import KernelSignature
from quantir.compiler.backend.llvm.context import TranslationError
from quantir.compiler.backend.llvm_translation import translate_kernel, translate_module
from quantir.compiler.context import make_context
from quantir.compiler.diagnostics import (
    UserError,
    format_parse_error,
    parse_located,
    verify_located,
)
from quantir.compiler.pipeline import (
    default_pipeline,
    lower,
    named_pipeline_target,
    named_pipelines,
)
from quantir.dialects.qrt import KERNEL_ATTR
from quantir.runtime import cache
from quantir.runtime.buffers import BufferPool
from quantir.runtime.host_plan import HostPlan, PlanError, plan_from_data, plan_to_data
from quantir.runtime.program import CpuProgramDevice, Program
from quantir.runtime.replay import ReplayCache

CACHE_FORMAT = "2"  # 2: host plans as data instead of host IR


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
    from quantir.runtime import host_plan

    h = hashlib.sha256()
    for package in (quantir.compiler, quantir.dialects):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    # Cache entries hold host plans as data: what builds and encodes them counts too.
    for module in (host_plan.__file__, __file__):
        h.update(Path(module).name.encode())
        h.update(Path(module).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class CompiledModule:
    target: str
    # Each host function's plan, or the PlanError message of one the runtime
    # cannot run (raised when it is asked for). Plans are cached as data, so
    # a module loaded from the cache parses no IR.
    plans: dict[str, HostPlan | str]
    signatures: dict[str, KernelSignature]
    # CPU: object files (one per distinct kernel) and each kernel's symbol in them.
    objects: tuple[bytes, ...] = ()
    symbols: dict[str, str] = field(default_factory=dict)
    ptx: str = ""  # GPU
    _kernels: object = field(default=None, repr=False, compare=False)
    # CPU temporaries reused across calls of this module's programs.
    _pool: BufferPool = field(default_factory=BufferPool, repr=False, compare=False)
    # CPU calls planned once per argument shapes (runtime/replay.py).
    _replays: ReplayCache = field(default_factory=ReplayCache, repr=False, compare=False)
    # CPU programs by (function, threads): they hold no per-call state.
    _programs: dict = field(default_factory=dict, repr=False, compare=False)

    def plan(self, function: str | None) -> HostPlan:
        """The host plan of `function` (the only function when None)."""
        if function is None:
            if len(self.plans) != 1:
                raise UserError(
                    f"the module has {len(self.plans)} functions "
                    f"({', '.join(sorted(self.plans))}): say which one to run"
                )
            function = next(iter(self.plans))
        if function not in self.plans:
            raise UserError(
                f"no function @{function} in the module "
                f"(it has: {', '.join(sorted(self.plans)) or 'none'})"
            )
        plan = self.plans[function]
        if isinstance(plan, str):
            raise PlanError(plan)
        return plan

    def to_bytes(self) -> bytes:
        plans = {
            n: p if isinstance(p, str) else plan_to_data(p) for n, p in sorted(self.plans.items())
        }
        plans_text = json.dumps(plans, sort_keys=True)
        meta = {
            "target": self.target,
            "plans": plans,
            "plans_sha256": hashlib.sha256(plans_text.encode()).hexdigest(),
            "ptx": self.ptx,
            "signatures": {
                n: [[k, list(d)] for k, d in s.params] for n, s in self.signatures.items()
            },
            "symbols": self.symbols,
            "objects": [len(o) for o in self.objects],
        }
        blob = json.dumps(meta).encode()
        return struct.pack("<Q", len(blob)) + blob + b"".join(self.objects)

    @staticmethod
    def from_bytes(data: bytes) -> CompiledModule:
        """The module `to_bytes` wrote; ValueError for anything else.

        A cache entry is untrusted input: every field is checked for the type
        and values `to_bytes` writes before anything uses it. The host plans
        are code (they decide which buffer each kernel gets), so besides being
        checked they must match the digest written beside them.
        """
        try:
            (n,) = struct.unpack_from("<Q", data)
            meta = json.loads(data[8 : 8 + n])
        except (struct.error, ValueError, RecursionError) as e:
            raise ValueError(f"not a compiled module ({e})") from None
        fields = {"target", "plans", "plans_sha256", "ptx", "signatures", "symbols", "objects"}
        if not isinstance(meta, dict) or set(meta) != fields:
            raise ValueError("compiled module metadata has the wrong fields")
        target, plans, ptx, signatures = (
            meta["target"],
            meta["plans"],
            meta["ptx"],
            meta["signatures"],
        )
        if target not in ("cpu", "gpu") or not isinstance(plans, dict):
            raise ValueError("compiled module metadata: bad target or host plans")
        if not isinstance(ptx, str) or not isinstance(signatures, dict):
            raise ValueError("compiled module metadata: bad PTX or signatures")
        digest = hashlib.sha256(json.dumps(plans, sort_keys=True).encode()).hexdigest()
        if meta["plans_sha256"] != digest:
            raise ValueError("compiled module: the host plans do not match their digest")
        host_plans = {
            name: plan if isinstance(plan, str) else plan_from_data(plan)
            for name, plan in plans.items()
        }
        sigs = {name: KernelSignature(name, _params(params)) for name, params in signatures.items()}
        symbols, sizes = meta["symbols"], meta["objects"]
        if not isinstance(symbols, dict) or not all(
            isinstance(v, str) and _SYMBOL.fullmatch(v) for v in symbols.values()
        ):
            raise ValueError("compiled module metadata: bad kernel symbols")
        if not isinstance(sizes, list) or not all(type(k) is int and k > 0 for k in sizes):
            raise ValueError("compiled module metadata: bad object sizes")
        code = data[8 + n :]
        if sum(sizes) != len(code):
            raise ValueError("compiled module: its objects do not fill the entry")
        objects, at = [], 0
        for size in sizes:
            objects.append(code[at : at + size])
            at += size
        if (target == "cpu") != bool(objects) or (target == "gpu") != bool(ptx):
            raise ValueError("compiled module: code does not match its target")
        return CompiledModule(target, host_plans, sigs, tuple(objects), symbols, ptx)

    def check_consistent(self, target: str, functions: frozenset[str] = frozenset()) -> None:
        """Raise ValueError unless this module is one `_build` could have made for
        `target` from a source defining `functions`: it has those host functions,
        each plan is named after its function, and launches only kernels it has,
        with as many arguments as their signatures take."""
        if self.target != target:
            raise ValueError(f"compiled for {self.target}, not {target}")
        if not functions <= self.plans.keys():
            raise ValueError(
                f"host functions {sorted(self.plans)} lack {sorted(functions - self.plans.keys())}"
            )
        for name, plan in self.plans.items():
            if isinstance(plan, str):
                continue
            if plan.name != name:
                raise ValueError(f"the plan of @{name} is named @{plan.name}")
            for out in plan.outputs:  # each dynamic result dimension names an argument's
                dynamic = sum(1 for d in out.spec.shape if d < 0)
                if dynamic != len(out.result_dims) or any(
                    not 0 <= arg < len(plan.args) or not 0 <= dim < len(plan.args[arg].spec.shape)
                    for arg, dim in out.result_dims
                ):
                    raise ValueError(f"output {out.label}: its dynamic dimensions have no source")
            for step in plan.steps:
                if step.kind != "launch":
                    continue
                kernel, args = step.args[0], step.args[1]
                signature = self.signatures.get(kernel)
                if signature is None or len(signature.params) != len(args):
                    raise ValueError(f"launch of @{kernel} does not match the kernel signatures")


_PARAM_KINDS = ("memref", "int", "f16", "f32", "f64")
_SYMBOL = re.compile(r"[A-Za-z_][\w.$]{0,127}")


def _params(params: object) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """A kernel signature's parameters from their JSON form; ValueError if malformed."""
    if not isinstance(params, list):
        raise ValueError("kernel signature: expected a list of parameters")
    out = []
    for param in params:
        if not (isinstance(param, list) and len(param) == 2 and param[0] in _PARAM_KINDS):
            raise ValueError(f"kernel signature: bad parameter {param!r:.60}")
        kind, dims = param
        if not isinstance(dims, list) or not all(type(d) is int and 0 <= d < 64 for d in dims):
            raise ValueError(f"kernel signature: bad dimensions {dims!r:.60}")
        out.append((kind, tuple(dims)))
    return tuple(out)


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
    check_pipeline_target(pipeline, target)
    compiled = _load_cached(key, target, _defined_functions(text))
    if compiled is not None:
        with _lock:
            _memory[key] = compiled
        return compiled
    with _collector_paused():
        module = parse_source(source, name)
        compiled = _build(module, target, gpu_arch, pipeline)
    cache.store(key, compiled.to_bytes())
    with _lock:
        _memory[key] = compiled
    return compiled


def in_memory(
    source: str, target: str = "cpu", *, gpu_arch: str = "sm_90", pipeline: str | None = None
) -> CompiledModule | None:
    """The module `compile_source` would return for these arguments, if it is
    in memory now (nothing is compiled or read from disk)."""
    key = _keys.get((source, target, gpu_arch, pipeline))
    return None if key is None else _memory.get(key)


_collector_lock = threading.Lock()
_collector_pauses = 0  # compiles running with the collector paused
_collector_was_enabled = False


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector stays off while a module compiles.

    A compile allocates hundreds of thousands of IR objects, most of which
    live until it ends; the collector's full passes over them (and over the
    caller's heap) cost 5-10% of a model's cold compile (70-180 ms of about
    1.8 s for a 127-op graph). The garbage the compile leaves is collected
    once the collector is back on. Nested and concurrent compiles turn it back
    on when the last one ends (if it was on before the first)."""
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


def check_pipeline_target(pipeline: str | None, target: str) -> None:
    """A named pipeline must feed `target`'s code generator (UserError otherwise)."""
    feeds = named_pipeline_target(pipeline or "")
    wants = "cpu" if target == "cpu" else "nvptx"
    if feeds is not None and feeds != wants:
        device = "a CPU" if target == "cpu" else "a GPU"
        raise UserError(
            f"pipeline {pipeline!r} compiles for {feeds}, but the device is {device}; use "
            f"{' or '.join(repr(p) for p in named_pipelines(wants))}"
        )


_FUNC_NAME = re.compile(r"^\s*func\.func\s+(?:public\s+)?@([A-Za-z_][\w$.]*)\s*\(", re.MULTILINE)


def _defined_functions(text: str) -> frozenset[str]:
    """Names of the public functions the source text defines, found without parsing it
    (a name this misses only goes unchecked)."""
    return frozenset(_FUNC_NAME.findall(text))


def _load_cached(key: str, target: str, functions: frozenset[str]) -> CompiledModule | None:
    """The disk cache's module for `key`, or None when missing or not valid.

    The cache directory is the user's own, so its entries are trusted not to
    be forged; they are not trusted to be well-formed or current. The
    entry's checksum covers its key (runtime.cache), which hashes the
    compiler's version and sources, the target and the input, so an entry
    written by another version or for another input is never loaded; the
    metadata is validated in full (from_bytes, check_consistent) and a CPU
    entry's machine code must define every kernel. Any failure deletes the
    entry and the caller rebuilds it.
    """
    payload = cache.load(key)
    if payload is None:
        return None
    try:
        compiled = CompiledModule.from_bytes(payload)
        compiled.check_consistent(target, functions)
        if target == "cpu":
            _cpu_kernels(compiled)  # every kernel's symbol must resolve
    except Exception:  # noqa: BLE001 - whatever is wrong with an untrusted entry, rebuild it
        cache.discard(key)
        return None
    return compiled


def _build(module: ModuleOp, target: str, gpu_arch: str, pipeline: str | None) -> CompiledModule:
    lowered = lower(module, "cpu" if target == "cpu" else "gpu", pipeline=pipeline)
    try:
        if target == "cpu":
            return _build_cpu(lowered)
        from quantir.compiler.backend import nvptx

        plans = host_plans(lowered)
        ir_module, sigs = translate_module(lowered, nvptx.target_info(gpu_arch))
    except TranslationError as e:
        # A custom pipeline left ops this target's code generator cannot take
        # (GPU ops for the CPU, say): the user's choice of pipeline, not a bug.
        raise UserError(
            f"pipeline {pipeline or default_pipeline(target)!r} produced IR the {target} "
            f"code generator cannot translate: {e}"
        ) from None
    return CompiledModule("gpu", plans, sigs, ptx=nvptx.emit_ptx(ir_module, gpu_arch))


# The name a kernel is translated under before its symbol is known (the
# symbol is derived from the translation's hash).
_PLACEHOLDER = "quantir_kernel_placeholder"
_kernel_objects: dict[str, bytes] = {}  # kernel cache key -> object code, in this process


def _build_cpu(lowered: ModuleOp) -> CompiledModule:
    """Host plans, and object code for the kernels of a lowered module, one
    object file per distinct kernel, each found in the per-kernel cache or
    compiled (and stored).

    A kernel's cache key hashes its LLVM IR (translated under a fixed name),
    the host target and the compiler's versions; its symbol is derived from
    that key, so equal kernels of different graphs are one object. A module
    without kernels (a custom pipeline that outlines nothing) is compiled whole.
    """
    info = cpu_backend.target_info()
    kernels = [
        f
        for f in lowered.ops
        if isinstance(f, func.FuncOp) and KERNEL_ATTR in f.attributes and not f.is_declaration
    ]
    if not kernels:
        ir_module, sigs = translate_module(lowered, info)
        code = (cpu_backend.compile_object(ir_module),)
        return CompiledModule("cpu", host_plans(lowered), sigs, code)
    signatures: dict[str, KernelSignature] = {}
    symbols: dict[str, str] = {}
    objects: dict[str, bytes | None] = {}  # by symbol, in kernel order
    missing: dict[str, tuple[str, Future[bytes]]] = {}  # symbol -> (key, its compile)
    # Independent kernels compile in parallel, each in an LLVM context of its
    # own, from the moment each is translated: LLVM works while Python
    # translates the next kernels and builds the host plans.
    with cpu_backend.ObjectCompiler(compile_threads()) as compiler:
        for kernel in kernels:
            name = kernel.sym_name.data
            ir_module, signature = translate_kernel(kernel, info, _PLACEHOLDER)
            text = str(ir_module)
            key = kernel_key(text)
            symbol = f"qk_{key[:32]}"
            signatures[name] = KernelSignature(name, signature.params)
            symbols[name] = symbol
            if symbol not in objects:
                objects[symbol] = _known_kernel_object(key, symbol)
                if objects[symbol] is None:
                    llvm_ir = text.replace(_PLACEHOLDER, symbol)
                    missing[symbol] = (key, compiler.submit(llvm_ir))
        plans = host_plans(lowered)
        for symbol, (key, compiling) in missing.items():
            obj = compiling.result()
            cache.store(key, _kernel_entry(symbol, obj), cache.KERNELS)
            with _lock:
                _kernel_objects[key] = obj
            objects[symbol] = obj
    code = tuple(obj for obj in objects.values() if obj is not None)
    return CompiledModule("cpu", plans, signatures, code, symbols)


def kernel_key(llvm_ir: str) -> str:
    """The per-kernel cache key of a kernel's LLVM IR (translated under the placeholder name)."""
    return cache.make_key("kernel", CACHE_FORMAT, _versions(), "cpu", target_key("cpu"), llvm_ir)


def compile_threads() -> int:
    """How many kernels LLVM compiles at once: QUANTIR_COMPILE_THREADS, else
    every core (at most 8)."""
    value = os.environ.get("QUANTIR_COMPILE_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise UserError(
                f"QUANTIR_COMPILE_THREADS must be a positive integer, got {value!r}"
            ) from None
    return max(1, min(8, os.cpu_count() or 1))


def _known_kernel_object(key: str, symbol: str) -> bytes | None:
    """The object code of a kernel compiled before (in this process or in the
    disk cache), or None."""
    with _lock:
        obj = _kernel_objects.get(key)
    if obj is None:
        obj = _load_kernel_entry(key, symbol)
        if obj is not None:
            with _lock:
                _kernel_objects[key] = obj
    return obj


def _kernel_entry(symbol: str, obj: bytes) -> bytes:
    """A per-kernel cache entry: `<Q length | JSON {symbol, object digest} | object`."""
    meta = json.dumps({"symbol": symbol, "object_sha256": hashlib.sha256(obj).hexdigest()})
    return struct.pack("<Q", len(meta)) + meta.encode() + obj


def _load_kernel_entry(key: str, symbol: str) -> bytes | None:
    """The object of the kernel entry under `key`, or None (missing or not valid:
    it must name `symbol` and its object must match its digest; else it is
    deleted, and the caller compiles the kernel again)."""
    payload = cache.load(key, cache.KERNELS)
    if payload is None:
        return None
    try:
        (n,) = struct.unpack_from("<Q", payload)
        meta = json.loads(payload[8 : 8 + n])
        obj = payload[8 + n :]
        if (
            not isinstance(meta, dict)
            or meta.get("symbol") != symbol
            or meta.get("object_sha256") != hashlib.sha256(obj).hexdigest()
            or not obj
        ):
            raise ValueError("not this kernel's entry")
    except (struct.error, ValueError, RecursionError):
        cache.discard(key, cache.KERNELS)
        return None
    return obj


def host_plans(lowered: ModuleOp) -> dict[str, HostPlan | str]:
    """The plan of each host function (not a kernel, not a declaration) of a
    lowered module, or the reason the runtime cannot run it."""
    plans: dict[str, HostPlan | str] = {}
    for op in lowered.ops:
        if isinstance(op, func.FuncOp) and KERNEL_ATTR not in op.attributes:
            if op.is_declaration:
                continue
            try:
                plans[op.sym_name.data] = HostPlan.build(op)
            except PlanError as e:
                plans[op.sym_name.data] = str(e)
    return plans


def load_program(
    compiled: CompiledModule, function: str | None = None, *, threads: int = 1, device=None
) -> Program:
    """Bind `function` (the only one when None) of a compiled module to a device."""
    if compiled.target == "cpu":
        program = compiled._programs.get((function, threads))
        if program is None:  # made once: an eager call's fixed cost
            plan = compiled.plan(function)
            kernels = _cpu_kernels(compiled)
            device = CpuProgramDevice(kernels, threads, compiled._pool, compiled._replays)
            program = Program(plan, compiled.signatures, device)
            compiled._programs[(function, threads)] = program
        return program
    plan = compiled.plan(function)
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
                    cpu_backend.LoadedObject(compiled.objects),
                    compiled.signatures,
                    compiled.symbols,
                )
    return compiled._kernels
