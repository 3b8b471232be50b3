"""How kernels take their arguments, on the CPU and on NVIDIA GPUs.

A kernel is a `func.func` marked `qrt.kernel` whose first two arguments are
`(lo: index, hi: index)`, the slice of its launch range it runs. Each later
argument lowers to LLVM parameters:

- a memref: a pointer to its first element (`noalias`; address space 1 on
  the GPU), then one i64 per dynamic dimension, in order;
- an `index` or integer: one integer of its width (index is i64);
- an `f16`, `f32` or `f64`: one float of that type.

On the CPU every kernel is exported as `void NAME(i64 lo, i64 hi, ptr argv)`:
argv holds one 8-byte slot per lowered parameter, and the entry loads each
slot as its parameter's type before calling the always-inlined body (so
`noalias` reaches the optimizer). A value sits in the low bytes of its slot,
which are its first bytes on little-endian hosts (x86-64, AArch64): an
integer as a 64-bit two's-complement number, a float as its IEEE bits at its
own width with the rest of the slot zero. On the GPU the kernel
(`ptx_kernel`) takes `(lo, hi, parameters...)` directly, and
`cuLaunchKernel` gets one pointer per parameter, to a ctypes value: pointers
as c_uint64, sizes and integers as c_int64 (a narrower integer parameter
reads its low bytes), floats at their declared width (c_uint16 holding the
IEEE bits of an f16, c_float, c_double).

Floats therefore reach a kernel at the precision it declares on both
targets: an f64 argument is never rounded to f32, and an f16 parameter never
reads the first two bytes of a wider float.

`KernelSignature` is what a runner needs of a compiled kernel (it is stored
with cached code). `lower_arguments` turns a launch's arguments into the
typed scalars above, once for both targets; `kernel_argv` lays them out as
the CPU's argv array and `kernel_params` as the GPU's parameter list.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IndexType,
    IntegerType,
    MemRefType,
)
from xdsl.ir import Attribute

from quantir.compiler.backend.llvm.context import TranslationError
from quantir.compiler.backend.llvm.types import I64, llvm_type

FLOAT_KINDS = {Float16Type: "f16", Float32Type: "f32", Float64Type: "f64"}
"""The signature kind of each float argument type: its width is part of the convention."""


@dataclass(frozen=True)
class KernelSignature:
    """How a kernel's arguments (after lo, hi) are passed.

    One entry per MLIR argument: ("memref", dynamic dimension indices) passes
    a pointer then one i64 per dynamic dimension; ("int", ()) an integer;
    ("f16" | "f32" | "f64", ()) a float of that width.
    """

    name: str
    params: tuple[tuple[str, tuple[int, ...]], ...]

    @staticmethod
    def of(name: str, types: Sequence[Attribute]) -> KernelSignature:
        params = []
        for t in types:
            if isinstance(t, MemRefType):
                dyn = tuple(i for i, d in enumerate(t.get_shape()) if d < 0)
                params.append(("memref", dyn))
            elif isinstance(t, IndexType | IntegerType):
                params.append(("int", ()))
            elif type(t) in FLOAT_KINDS:
                params.append((FLOAT_KINDS[type(t)], ()))
            else:
                raise TranslationError(f"@{name}: unsupported argument type {t}")
        return KernelSignature(name, tuple(params))

    @property
    def slots(self) -> int:
        """Number of 8-byte argv slots (CPU) or parameters (GPU) after lo, hi."""
        return sum(1 + len(dims) if kind == "memref" else 1 for kind, dims in self.params)


# -- the compiled side ----------------------------------------------------------


@dataclass(frozen=True)
class LoweredParam:
    """One LLVM parameter of a function: what it carries and its type."""

    kind: str  # "ptr" (a memref's base), "dim" (a dynamic size), "int", "float"
    type: ir.Type


def lowered_params(name: str, types: Sequence[Attribute], addrspace: int) -> list[LoweredParam]:
    """The LLVM parameters of arguments of `types` (after lo, hi for a kernel)."""
    params: list[LoweredParam] = []
    for t in types:
        if isinstance(t, MemRefType):
            params.append(LoweredParam("ptr", ir.PointerType(addrspace=addrspace)))
            params.extend(LoweredParam("dim", I64) for d in t.get_shape() if d < 0)
        elif isinstance(t, IndexType | IntegerType):
            params.append(LoweredParam("int", llvm_type(t)))
        elif type(t) in FLOAT_KINDS:
            params.append(LoweredParam("float", llvm_type(t)))
        else:
            raise TranslationError(f"@{name}: unsupported argument type {t}")
    return params


def define_cpu_entry(
    module: ir.Module, name: str, body: ir.Function, params: Sequence[LoweredParam]
) -> ir.Function:
    """`void NAME(i64 lo, i64 hi, ptr argv)`: load each argv slot, call `body`."""
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64, I64, ir.PointerType()]), name)
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    args = []
    for i, param in enumerate(params):
        slot = b.gep(entry.args[2], [ir.Constant(I64, i)], inbounds=True, source_etype=I64)
        args.append(b.load(slot, typ=param.type, align=8))
    b.call(body, [entry.args[0], entry.args[1], *args])
    b.ret_void()
    return entry


# -- the runtime side -----------------------------------------------------------

_U64_MASK = 0xFFFF_FFFF_FFFF_FFFF
_FLOAT_SCALARS = {"f16": np.float16, "f32": np.float32, "f64": np.float64}


def host_address(buffer: np.ndarray) -> int:
    """Where a CPU buffer (a numpy array) starts."""
    return buffer.ctypes.data


def device_address(buffer) -> int:
    """Where a GPU buffer starts (its `ptr`, a device address)."""
    return buffer.ptr


def lower_arguments(
    sig: KernelSignature, args: Sequence[object], address: Callable[[object], int]
) -> list[tuple[str, int | float]]:
    """(scalar type, value) per lowered parameter after lo, hi.

    Scalar types: "u64" (a buffer address, from `address`), "i64" (a size or
    an integer), "f16" / "f32" / "f64" (a float). Buffers also need `shape`.
    """
    values: list[tuple[str, int | float]] = []
    append = values.append  # a launch's fixed cost: keep this loop lean
    for (kind, dims), value in zip(sig.params, args):
        if kind == "memref":
            append(("u64", address(value)))
            shape = value.shape
            for d in dims:
                append(("i64", int(shape[d])))
        elif kind == "int":
            append(("i64", int(value)))
        elif kind in _FLOAT_SCALARS:
            append((kind, float(value)))
        else:
            raise ValueError(f"kernel {sig.name}: unknown argument kind {kind!r}")
    return values


def kernel_argv(
    sig: KernelSignature, args: Sequence[object], address: Callable[[object], int] = host_address
) -> np.ndarray:
    """The CPU argv array of a launch: one 8-byte slot per lowered parameter."""
    values = lower_arguments(sig, args, address)
    slots = [0 if s in _FLOAT_SCALARS else v & _U64_MASK for s, v in values]
    argv = np.array(slots or [0], dtype=np.uint64)
    for i, (scalar, value) in enumerate(values):
        if scalar in _FLOAT_SCALARS:
            # The low bytes of slot i are element i * (8 // size) of argv
            # viewed as that float type (little-endian hosts).
            view = argv.view(_FLOAT_SCALARS[scalar])
            view[i * (view.size // argv.size)] = value
    return argv


def _half_bits(value: float) -> ctypes.c_uint16:
    return ctypes.c_uint16(int(np.float16(value).view(np.uint16)))


_PARAM_CTYPES: dict[str, Callable[[int | float], ctypes._SimpleCData]] = {
    "u64": ctypes.c_uint64,
    "i64": ctypes.c_int64,
    "f16": _half_bits,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
}


def kernel_params(
    sig: KernelSignature,
    args: Sequence[object],
    n: int,
    address: Callable[[object], int] = device_address,
) -> list:
    """ctypes values for (lo=0, hi=n, then each lowered argument) of a GPU kernel."""
    params: list = [ctypes.c_int64(0), ctypes.c_int64(n)]
    params.extend(_PARAM_CTYPES[s](v) for s, v in lower_arguments(sig, args, address))
    return params
