"""The kernel calling convention: one packing function for both runners.

A kernel with every kind of scalar argument (f16, f32, f64, i32, index) and a
dynamic memref is compiled for the host and called with the argv that
`kernel_argv` packs; its PTX parameters are checked against the ctypes
values `kernel_params` packs for the GPU (and, with a GPU, launched). Both
runners' launches go through `lower_arguments`, and a float reaches either
target at its declared width.
"""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
from xdsl.parser import Parser

from quantir.compiler.backend import calling_convention, cpu_codegen, nvptx
from quantir.compiler.backend.calling_convention import (
    KernelSignature,
    kernel_argv,
    kernel_params,
    lower_arguments,
)
from quantir.compiler.backend.llvm_translation import translate_module
from quantir.compiler.context import make_context
from quantir.runtime import cuda, program

# Stores each scalar argument, widened to f64, into out[0..4].
SCALARS_KERNEL = """
func.func @scalars(%lo: index, %hi: index, %out: memref<?xf64>,
                   %h: f16, %s: f32, %d: f64, %i: i32, %n: index) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %h64 = arith.extf %h : f16 to f64
  memref.store %h64, %out[%c0] : memref<?xf64>
  %s64 = arith.extf %s : f32 to f64
  memref.store %s64, %out[%c1] : memref<?xf64>
  memref.store %d, %out[%c2] : memref<?xf64>
  %i64 = arith.sitofp %i : i32 to f64
  memref.store %i64, %out[%c3] : memref<?xf64>
  %n64 = arith.index_cast %n : index to i64
  %nf = arith.sitofp %n64 : i64 to f64
  memref.store %nf, %out[%c4] : memref<?xf64>
  func.return
}
"""

# Values a narrower float cannot hold: each lands in the kernel only if it is
# passed at its own width.
SCALARS = [1 / 3, 0.1, 1e300, -7, 1 << 40]


def expected(values) -> np.ndarray:
    h, s, d, i, n = values
    return np.array([np.float16(h), np.float32(s), d, i, n], dtype=np.float64)


def scalars_module():
    return Parser(make_context(), SCALARS_KERNEL).parse_module()


def test_signature_records_float_widths() -> None:
    _, sigs = translate_module(scalars_module(), cpu_codegen.target_info())
    assert sigs["scalars"] == KernelSignature(
        "scalars",
        (("memref", (0,)), ("f16", ()), ("f32", ()), ("f64", ()), ("int", ()), ("int", ())),
    )
    assert sigs["scalars"].slots == 7


def test_cpu_kernel_reads_the_argv_that_kernel_argv_packs() -> None:
    ir_module, sigs = translate_module(scalars_module(), cpu_codegen.target_info())
    obj = cpu_codegen.LoadedObject(cpu_codegen.compile_object(ir_module))
    entry = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)(
        obj.address("scalars")
    )
    out = np.full(5, np.nan)
    argv = kernel_argv(sigs["scalars"], [out, *SCALARS])
    entry(0, 1, argv.ctypes.data)
    np.testing.assert_array_equal(out, expected(SCALARS))


PTX_PARAM = re.compile(
    r"\.param (?:\.align \d+ )?\.(\w+)(?: \.ptr \.global \.align \d+)? \w+(?:\[(\d+)\])?"
)


def ptx_param_sizes(ptx: str) -> list[int]:
    """Byte size of each parameter of the one kernel in `ptx`."""
    sizes = []
    for ty, count in PTX_PARAM.findall(ptx):
        sizes.append(int(count) if count else int(ty[1:]) // 8)
    return sizes


class _FakeGpuBuffer:
    def __init__(self, ptr: int, shape: tuple[int, ...]):
        self.ptr, self.shape = ptr, shape


def test_gpu_params_match_the_ptx_parameters() -> None:
    ir_module, sigs = translate_module(scalars_module(), nvptx.target_info("sm_90"))
    sizes = ptx_param_sizes(nvptx.emit_ptx(ir_module, "sm_90"))
    params = kernel_params(sigs["scalars"], [_FakeGpuBuffer(0x1000, (5,)), *SCALARS], 1)
    assert len(params) == len(sizes) == 9
    # lo, hi, the buffer and its size: 8 bytes each.
    assert sizes[:4] == [8, 8, 8, 8]
    # Floats exactly at their PTX width; integers as 8 bytes whose low bytes
    # a narrower integer parameter reads.
    assert [ctypes.sizeof(p) for p in params[4:7]] == sizes[4:7] == [2, 4, 8]
    assert all(ctypes.sizeof(p) >= s for p, s in zip(params[7:], sizes[7:]))


def _slot_bytes(argv: np.ndarray, i: int, size: int) -> bytes:
    return argv[i : i + 1].tobytes()[:size]


def test_a_float_is_packed_the_same_for_both_targets() -> None:
    sig = KernelSignature("k", (("f16", ()), ("f32", ()), ("f64", ()), ("int", ())))
    values = [0.1, 0.1, 0.1, -3]
    argv = kernel_argv(sig, values)
    params = kernel_params(sig, values, 1)[2:]
    for i, p in enumerate(params):
        size = ctypes.sizeof(p)
        assert _slot_bytes(argv, i, size) == ctypes.string_at(ctypes.addressof(p), size)
        assert argv[i : i + 1].tobytes()[size:] == bytes(8 - size)  # the rest of the slot
    assert np.frombuffer(_slot_bytes(argv, 0, 2), np.float16)[0] == np.float16(0.1)
    assert np.frombuffer(_slot_bytes(argv, 1, 4), np.float32)[0] == np.float32(0.1)
    assert np.frombuffer(_slot_bytes(argv, 2, 8), np.float64)[0] == 0.1
    assert argv[3] == (-3) & 0xFFFF_FFFF_FFFF_FFFF


@pytest.fixture
def packing_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the name of every kernel whose arguments `lower_arguments` lowers."""
    calls: list[str] = []

    def spy(sig, args, address):
        calls.append(sig.name)
        return lower_arguments(sig, args, address)

    monkeypatch.setattr(calling_convention, "lower_arguments", spy)
    return calls


SIG = KernelSignature("k", (("int", ()), ("memref", (0,)), ("f32", ())))


def test_the_cpu_runner_packs_through_the_calling_convention(packing_calls) -> None:
    launched = {}

    class Kernels:
        def launch(self, name, argv, n, threads):
            launched.update(name=name, argv=argv.copy(), n=n)

    buf = np.zeros((3, 4), np.float32)
    program.CpuProgramDevice(Kernels(), threads=1).launch(SIG, [5, buf, 0.5], 10, 0, 0)
    assert packing_calls == ["k"] and launched["name"] == "k" and launched["n"] == 10
    np.testing.assert_array_equal(launched["argv"], kernel_argv(SIG, [5, buf, 0.5]))


def test_the_gpu_runner_packs_through_the_calling_convention(packing_calls) -> None:
    buf = _FakeGpuBuffer(0x2000, (3, 4))
    want = kernel_params(SIG, [5, buf, 0.5], 10)
    sizes = [ctypes.sizeof(p) for p in want]
    launches = []

    class Driver:
        def call(self, name, *args):
            assert name == "cuLaunchKernel"
            pointers = args[9]  # read now: the values live as long as the call
            launches.append([ctypes.string_at(p, n) for p, n in zip(pointers, sizes)])

    class Gpu:
        driver = Driver()

        def function(self, ptx, name):
            return None

        def activate(self):
            pass

    packing_calls.clear()
    cuda.GpuProgramDevice(Gpu(), "").launch(SIG, [5, buf, 0.5], 10, 32, 32)
    assert packing_calls == ["k"]
    assert launches == [[ctypes.string_at(ctypes.addressof(p), n) for p, n in zip(want, sizes)]]


@pytest.mark.gpu
@pytest.mark.skipif(not cuda.available(), reason="no NVIDIA GPU / CUDA driver")
def test_gpu_kernel_reads_the_params_that_kernel_params_packs() -> None:
    gpu = cuda.GpuDevice.get(0)
    ir_module, sigs = translate_module(scalars_module(), nvptx.target_info(gpu.arch))
    device = gpu.bind(nvptx.emit_ptx(ir_module, gpu.arch))
    out = gpu.upload(np.full(5, np.nan))
    device.launch(sigs["scalars"], [out, *SCALARS], 1, 32, 32)
    np.testing.assert_array_equal(out.to_numpy(), expected(SCALARS))
