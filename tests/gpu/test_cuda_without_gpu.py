"""The CUDA runtime's behaviour that needs no GPU: import, errors, argument packing."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import numpy as np
import pytest

from quantir.compiler.backend.calling_convention import KernelSignature
from quantir.runtime import cuda
from quantir.runtime.compiled_graph import DeviceUnavailableError


def test_import_never_touches_the_driver() -> None:
    code = "import quantir.runtime.cuda, quantir.runtime.api; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(cuda.available(), reason="a GPU is present")
def test_no_gpu_is_a_clear_error() -> None:
    from quantir.runtime.api import qmatmul

    # The eager API reports it as quantir-run does (DeviceUnavailableError).
    with pytest.raises(DeviceUnavailableError, match="'cuda:0' is not available: no GPU"):
        qmatmul("q4_0", np.zeros((1, 32), np.float32), np.zeros((4, 18), np.uint8), device="cuda:0")
    assert cuda.available() is False


def test_unknown_device_string() -> None:
    from quantir.runtime.device_names import parse_device

    assert parse_device("cpu") == ("cpu", 0)
    assert parse_device("cuda:3") == ("gpu", 3)
    assert parse_device("GPU") == ("gpu", 0)
    with pytest.raises(ValueError, match="unknown device"):
        parse_device("tpu:0")


class _FakeBuffer:
    def __init__(self, ptr: int, shape: tuple[int, ...]):
        self.ptr, self.shape = ptr, shape


def test_kernel_parameters_follow_the_signature() -> None:
    sig = KernelSignature("k", (("int", ()), ("memref", (0,)), ("memref", ()), ("memref", (0, 1))))
    params = cuda.kernel_params(
        sig,
        [7, _FakeBuffer(0x1000, (5, 8)), _FakeBuffer(0x2000, (4,)), _FakeBuffer(0x3000, (2, 3))],
        640,
    )
    values = [p.value for p in params]
    assert values == [0, 640, 7, 0x1000, 5, 0x2000, 0x3000, 2, 3]
    assert isinstance(params[3], ctypes.c_uint64) and isinstance(params[4], ctypes.c_int64)


def test_driver_errors_are_named() -> None:
    err = cuda.CudaError("cuModuleLoadDataEx", 222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "bad")
    assert "update the NVIDIA driver" in str(err) and "222" in str(err)


def test_gpu_check_script_dry_run(tmp_path) -> None:
    """benchmarks/gpu_check.py runs end to end (on the CPU, small sizes) and writes its results."""
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    out = subprocess.run(
        [sys.executable, str(script), "--dry-run", "--encodings", "q4_k,gptq4", "--out", tmp_path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(results["cases"]) == {"q4_k", "gptq4-g128"}
    for case in results["cases"].values():
        assert case["correctness"]["dequantize_bit_identical"]
        assert all(r["within_bound"] for r in case["correctness"]["qmatmul"].values())
        assert case["qmatmul_m1"]["gbs"] > 0 and case["dequantize"]["gbs"] > 0
    assert (tmp_path / "gpu_check.txt").read_text().startswith("CPU dry run")


def _resident(shape: tuple[int, ...], dtype: str) -> cuda.DeviceBuffer:
    """A DeviceBuffer's metadata without a GPU (never freed: owner=False)."""
    return cuda.DeviceBuffer(0x1000, shape, np.dtype(dtype), None, owner=False)  # type: ignore[arg-type]


def test_resident_weights_are_validated_by_their_metadata() -> None:
    """The eager API takes a DeviceBuffer wherever a packed array goes, checked by shape/dtype."""
    from quantir.runtime.api import dequantize, qmatmul
    from quantir.runtime.buffers import BufferError

    x = np.zeros((1, 512), np.float32)
    with pytest.raises(BufferError, match="not a whole number of 144-byte blocks"):
        qmatmul("q4_k", x, _resident((4, 300), "uint8"), device="cuda:0")
    with pytest.raises(BufferError, match="expected dtype uint8, got float32"):
        dequantize("q4_k", _resident((4, 288), "float32"), device="cuda:0")
    with pytest.raises(BufferError, match="expected 2 dimensions"):
        dequantize("q4_k", _resident((4 * 288,), "uint8"), device="cuda:0")
    with pytest.raises(BufferError, match=r"expected shape \[\.\.\., 512\]"):
        qmatmul("q4_k", np.zeros((1, 256), np.float32), _resident((4, 288), "uint8"))
    # Valid metadata passes the eager checks; a CPU program then refuses GPU memory.
    with pytest.raises(BufferError, match="a GPU buffer cannot be used by a CPU program"):
        qmatmul("q4_k", x, _resident((4, 288), "uint8"), device="cpu")


def test_resident_gptq_tensors_are_validated_by_their_metadata() -> None:
    from quantir.dialects.encoding import QuantizationConfig
    from quantir.runtime.api import qmatmul
    from quantir.runtime.buffers import BufferError

    cfg = QuantizationConfig("gptq", 4, 128)
    x = np.zeros((1, 256), np.float32)
    parts = [
        _resident((32, 64), "int32"),
        _resident((2, 8), "int32"),
        _resident((2, 64), "float16"),
        np.arange(256, dtype=np.int32) // 128,
    ]
    with pytest.raises(BufferError, match="a GPU buffer cannot be used by a CPU program"):
        qmatmul("gptq", x, parts, config=cfg, device="cpu")
    with pytest.raises(BufferError, match="qweight: expected a 2-D int32 array"):
        qmatmul("gptq", x, [_resident((32 * 64,), "int32"), *parts[1:]], config=cfg)
    with pytest.raises(BufferError, match="g_idx: expected a 1-D int32 array of length K=256"):
        qmatmul("gptq", x, [*parts[:3], _resident((255,), "int32")], config=cfg)


class _FakeLib:
    """Driver entry points that succeed, recording which were called."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.next_ptr = 0x10000

    def __getattr__(self, name: str):
        def call(*args) -> int:
            self.calls.append(name)
            if name == "cuDeviceGetCount":
                args[0]._obj.value = 1
            elif name == "cuMemAlloc_v2":
                args[0]._obj.value = self.next_ptr
                self.next_ptr += 0x10000
            return 0

        return call


def test_program_temporaries_come_from_a_workspace() -> None:
    """Per-call device buffers are reused: no cuMemAlloc/cuMemFree once warm (cuMemFree syncs)."""
    lib = _FakeLib()
    gpu = cuda.GpuDevice(0, cuda.Driver(lib))
    dev = cuda.GpuProgramDevice(gpu, "")
    a = dev.alloc((4, 8), "float32")
    b = dev.alloc((4, 8), "float32")
    ptrs = {a.ptr, b.ptr}
    dev.free(a)
    dev.free(b)
    lib.calls.clear()
    for _ in range(3):
        c, d = dev.alloc((4, 8), "float32"), dev.alloc((32,), "int32")  # same byte size
        assert {c.ptr, d.ptr} == ptrs
        dev.free(d)
        dev.free(c)
    assert "cuMemAlloc_v2" not in lib.calls and "cuMemFree_v2" not in lib.calls
    e = dev.alloc((5,), "float32")  # another size: a new allocation
    assert lib.calls.count("cuMemAlloc_v2") == 1 and e.ptr not in ptrs
    assert gpu.trim_workspace() and lib.calls.count("cuMemFree_v2") == 2


def test_resident_gather_operands_are_validated_by_their_metadata() -> None:
    """gather takes a resident table and resident ids, checked by shape/dtype first."""
    from quantir.runtime.api import gather
    from quantir.runtime.buffers import BufferError

    table = np.zeros((4, 144), np.uint8)
    with pytest.raises(BufferError, match="not a whole number of 144-byte blocks"):
        gather(_resident((4, 300), "uint8"), [0], encoding="q4_k", device="cuda:0")
    with pytest.raises(BufferError, match="indices: expected dtype int32 or int64, got float32"):
        gather(table, _resident((3,), "float32"), encoding="q4_k", device="cuda:0")
    with pytest.raises(BufferError, match="indices: expected an array of rank 1 or more"):
        gather(table, _resident((), "int64"), encoding="q4_k", device="cuda:0")
    with pytest.raises(BufferError, match="a GPU buffer cannot be used by a CPU program"):
        gather(table, _resident((3,), "int32"), encoding="q4_k", device="cpu")
