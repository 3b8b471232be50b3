"""Running kernels on NVIDIA GPUs through the CUDA driver API (ctypes, no toolkit).

Importing this module never touches the driver. The first use loads
`libcuda.so.1` and calls `cuInit`; without a driver or a device that is a
`CudaUnavailable` error ("no GPU: ..."), never a crash. Driver errors become
`CudaError` with the driver's name for the code and what it usually means.

- `GpuDevice.get(index)` opens device `index` (its primary context); a
  device loads PTX once per module (`cuModuleLoadDataEx`).
- `to_device(array, device="cuda:0")` uploads a numpy array into a
  `DeviceBuffer`, which can be passed as a weight (or input) to GPU programs
  and stays resident across calls.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from quantir.compiler.backend.calling_convention import KernelSignature, kernel_params
from quantir.dialects.errors import QuantirError
from quantir.runtime.device_names import parse_device


class CudaUnavailable(RuntimeError, QuantirError):  # noqa: N818 (reads as "no GPU", like the message)
    """There is no usable GPU (no driver library, no device, or cuInit failed)."""


class CudaError(RuntimeError, QuantirError):
    """A CUDA driver call failed."""

    def __init__(self, call: str, code: int, name: str, description: str):
        hint = _HINTS.get(code, "")
        super().__init__(
            f"CUDA {call} failed: {name} ({code}): {description}" + (f". {hint}" if hint else "")
        )
        self.code = code


_HINTS = {
    2: "the GPU is out of memory",
    100: "no CUDA-capable device is visible (check CUDA_VISIBLE_DEVICES)",
    101: "the device index is out of range",
    209: "the PTX was compiled for a newer GPU architecture than this device",
    218: "the PTX did not assemble: please report this as a quantir bug",
    222: "the PTX ISA version is newer than this driver supports: update the NVIDIA driver",
    700: "a kernel accessed memory out of bounds: please report this as a quantir bug",
    719: "a kernel failed while running (launch failure)",
}

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6


class Driver:
    """The few driver entry points quantir uses (the _v2 ones: 64-bit sizes)."""

    def __init__(self, lib: ctypes.CDLL | None = None):
        if lib is None:
            try:
                lib = ctypes.CDLL("libcuda.so.1")
            except OSError as e:
                raise CudaUnavailable(
                    f"no GPU: cannot load the CUDA driver (libcuda.so.1): {e}"
                ) from None
        self.lib = lib
        rc = lib.cuInit(0)
        if rc != 0:
            raise CudaUnavailable(f"no GPU: cuInit failed with {self.error_name(rc)} ({rc})")

    def error_name(self, code: int) -> str:
        name = ctypes.c_char_p()
        if self.lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return name.value.decode()
        return f"CUDA_ERROR_{code}"

    def error_string(self, code: int) -> str:
        text = ctypes.c_char_p()
        if self.lib.cuGetErrorString(code, ctypes.byref(text)) == 0 and text.value:
            return text.value.decode()
        return "unknown error"

    def check(self, call: str, rc: int) -> None:
        if rc != 0:
            raise CudaError(call, rc, self.error_name(rc), self.error_string(rc))

    def call(self, name: str, *args) -> None:
        self.check(name, getattr(self.lib, name)(*args))


_driver: Driver | None = None
_driver_lock = threading.Lock()


def driver() -> Driver:
    global _driver
    with _driver_lock:
        if _driver is None:
            _driver = Driver()
        return _driver


def available() -> bool:
    """Whether a CUDA driver and at least one device are usable."""
    try:
        return device_count() > 0
    except (CudaUnavailable, CudaError):
        return False


def device_count() -> int:
    d = driver()
    n = ctypes.c_int()
    d.call("cuDeviceGetCount", ctypes.byref(n))
    return n.value


@dataclass
class DeviceBuffer:
    """Device memory holding a C-contiguous array of `shape` and `dtype`."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    device: GpuDevice
    owner: bool = True
    pooled: bool = False  # taken from the device's workspace pool: give it back, never free it

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def to_numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        self.device.to_host(self, out)
        return out

    def free(self) -> None:
        if self.owner and self.ptr:
            self.device.release(self.ptr)
            self.ptr = 0

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # interpreter shutdown: the driver may be gone
            pass


class GpuDevice:
    """One GPU: its context, loaded modules, memory and kernel launches."""

    _devices: dict[int, GpuDevice] = {}
    _lock = threading.Lock()

    def __init__(self, index: int, drv: Driver | None = None):
        self.driver = drv or driver()
        self.index = index
        d = self.driver
        count = ctypes.c_int()
        d.call("cuDeviceGetCount", ctypes.byref(count))
        if not 0 <= index < count.value:
            raise CudaUnavailable(f"no GPU cuda:{index}: {count.value} device(s) visible")
        self.handle = ctypes.c_int()
        d.call("cuDeviceGet", ctypes.byref(self.handle), index)
        major, minor = ctypes.c_int(), ctypes.c_int()
        d.call(
            "cuDeviceGetAttribute",
            ctypes.byref(major),
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            self.handle,
        )
        d.call(
            "cuDeviceGetAttribute",
            ctypes.byref(minor),
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
            self.handle,
        )
        self.arch = f"sm_{major.value}{minor.value}"
        self.context = ctypes.c_void_p()
        d.call("cuDevicePrimaryCtxRetain", ctypes.byref(self.context), self.handle)
        self._modules: dict[str, ctypes.c_void_p] = {}
        self._functions: dict[tuple[str, str], ctypes.c_void_p] = {}
        self.lock = threading.Lock()
        # The workspace: device memory of programs' temporaries (and per-call
        # uploads and outputs), kept across calls by exact size. cuMemFree
        # synchronizes the device, so a call must not free; all work runs in
        # order on the default stream, so memory given back after its last
        # launch can be handed to the next launch at once.
        self._pool: dict[int, list[int]] = {}
        self._pooled_bytes = 0
        self._pool_lock = threading.Lock()

    @classmethod
    def get(cls, index: int = 0, ptx: str | None = None) -> GpuDevice:
        with cls._lock:
            dev = cls._devices.get(index)
            if dev is None:
                dev = cls._devices[index] = GpuDevice(index)
        if ptx is not None:
            dev.load(ptx)
        return dev

    def activate(self) -> None:
        self.driver.call("cuCtxSetCurrent", self.context)

    # -- modules -------------------------------------------------------------

    def load(self, ptx: str) -> ctypes.c_void_p:
        with self.lock:
            module = self._modules.get(ptx)
            if module is not None:
                return module
            self.activate()
            module = ctypes.c_void_p()
            log = ctypes.create_string_buffer(8192)
            options = (ctypes.c_int * 2)(
                CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
            )
            values = (ctypes.c_void_p * 2)(ctypes.addressof(log), ctypes.sizeof(log))
            image = ptx.encode() + b"\0"
            rc = self.driver.lib.cuModuleLoadDataEx(ctypes.byref(module), image, 2, options, values)
            if rc != 0:
                detail = log.value.decode(errors="replace").strip()
                err = CudaError(
                    "cuModuleLoadDataEx",
                    rc,
                    self.driver.error_name(rc),
                    self.driver.error_string(rc) + (f": {detail}" if detail else ""),
                )
                raise err
            self._modules[ptx] = module
            return module

    def function(self, ptx: str, name: str) -> ctypes.c_void_p:
        key = (ptx, name)
        fn = self._functions.get(key)
        if fn is None:
            module = self.load(ptx)
            fn = ctypes.c_void_p()
            self.driver.call("cuModuleGetFunction", ctypes.byref(fn), module, name.encode())
            self._functions[key] = fn
        return fn

    def bind(self, ptx: str) -> GpuProgramDevice:
        self.load(ptx)
        return GpuProgramDevice(self, ptx)

    # -- memory ------------------------------------------------------------

    def allocate(self, nbytes: int) -> int:
        self.activate()
        ptr = ctypes.c_uint64()
        self.driver.call("cuMemAlloc_v2", ctypes.byref(ptr), ctypes.c_size_t(max(1, nbytes)))
        return ptr.value

    def release(self, ptr: int) -> None:
        self.activate()
        self.driver.call("cuMemFree_v2", ctypes.c_uint64(ptr))

    def alloc(self, shape: tuple[int, ...], dtype: str) -> DeviceBuffer:
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        return DeviceBuffer(self.allocate(nbytes), tuple(shape), dt, self)

    # -- workspace -----------------------------------------------------------

    POOL_LIMIT = 4 << 30
    """At most this many bytes stay in the workspace pool; more are freed."""

    def workspace(self, shape: tuple[int, ...], dtype: str) -> DeviceBuffer:
        """A buffer from the workspace pool (no driver call when one of its size is free)."""
        dt = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * dt.itemsize)
        with self._pool_lock:
            free = self._pool.get(nbytes)
            ptr = free.pop() if free else 0
            if ptr:
                self._pooled_bytes -= nbytes
        if not ptr:
            try:
                ptr = self.allocate(nbytes)
            except CudaError as e:
                if e.code != 2 or not self.trim_workspace():
                    raise
                ptr = self.allocate(nbytes)  # out of memory: retry with the pool emptied
        return DeviceBuffer(ptr, tuple(shape), dt, self, owner=False, pooled=True)

    def give_back(self, buffer: DeviceBuffer) -> None:
        """Return a workspace buffer to the pool (its last use may still be queued)."""
        if not buffer.pooled or not buffer.ptr:
            return
        nbytes = max(1, buffer.nbytes)
        with self._pool_lock:
            keep = self._pooled_bytes + nbytes <= self.POOL_LIMIT
            if keep:
                self._pool.setdefault(nbytes, []).append(buffer.ptr)
                self._pooled_bytes += nbytes
        if not keep:
            self.release(buffer.ptr)
        buffer.ptr = 0

    def trim_workspace(self) -> bool:
        """Free every pooled buffer; whether there was any."""
        with self._pool_lock:
            ptrs = [p for free in self._pool.values() for p in free]
            self._pool.clear()
            self._pooled_bytes = 0
        for p in ptrs:
            self.release(p)
        return bool(ptrs)

    def upload_workspace(self, array: np.ndarray) -> DeviceBuffer:
        """`upload` into a workspace buffer (per-call inputs of a program)."""
        array = np.ascontiguousarray(array)
        buf = self.workspace(array.shape, array.dtype.name)
        if array.nbytes:
            self.activate()
            self.driver.call(
                "cuMemcpyHtoD_v2",
                ctypes.c_uint64(buf.ptr),
                ctypes.c_void_p(array.ctypes.data),
                ctypes.c_size_t(array.nbytes),
            )
        return buf

    def upload(self, array: np.ndarray) -> DeviceBuffer:
        array = np.ascontiguousarray(array)
        buf = self.alloc(array.shape, array.dtype.name)
        if array.nbytes:
            self.driver.call(
                "cuMemcpyHtoD_v2",
                ctypes.c_uint64(buf.ptr),
                ctypes.c_void_p(array.ctypes.data),
                ctypes.c_size_t(array.nbytes),
            )
        return buf

    def to_host(self, buffer: DeviceBuffer, out: np.ndarray) -> None:
        self.activate()
        if buffer.nbytes:
            self.driver.call(
                "cuMemcpyDtoH_v2",
                ctypes.c_void_p(out.ctypes.data),
                ctypes.c_uint64(buffer.ptr),
                ctypes.c_size_t(buffer.nbytes),
            )

    def synchronize(self) -> None:
        self.activate()
        self.driver.call("cuCtxSynchronize")


class GpuProgramDevice:
    """The `ProgramDevice` of GPU programs: one GPU and the PTX module of the program."""

    def __init__(self, gpu: GpuDevice, ptx: str):
        self.gpu = gpu
        self.ptx = ptx

    def to_device(self, array):
        if isinstance(array, DeviceBuffer):
            if array.device is not self.gpu:
                raise ValueError(
                    f"a buffer on cuda:{array.device.index} was passed to a program on "
                    f"cuda:{self.gpu.index}"
                )
            return array
        return self.gpu.upload_workspace(array)

    def output_buffer(self, shape: tuple[int, ...], dtype: str) -> DeviceBuffer:
        return self.gpu.workspace(shape, dtype)

    def to_host(self, buffer: DeviceBuffer, out: np.ndarray) -> None:
        self.gpu.synchronize()
        self.gpu.to_host(buffer, out)

    def alloc(self, shape, dtype) -> DeviceBuffer:
        """A temporary of the host plan: from the workspace, no driver call once warm."""
        return self.gpu.workspace(shape, dtype)

    def free(self, buffer: DeviceBuffer) -> None:
        """Back to the workspace: never cuMemFree (it would synchronize the device)."""
        if buffer.pooled:
            self.gpu.give_back(buffer)
        else:
            buffer.free()

    def copy(self, src: DeviceBuffer, dst: DeviceBuffer) -> None:
        self.gpu.activate()
        if src.nbytes:
            self.gpu.driver.call(
                "cuMemcpyDtoD_v2",
                ctypes.c_uint64(dst.ptr),
                ctypes.c_uint64(src.ptr),
                ctypes.c_size_t(src.nbytes),
            )

    def reshape(self, buffer: DeviceBuffer, shape) -> DeviceBuffer:
        return DeviceBuffer(buffer.ptr, tuple(shape), buffer.dtype, self.gpu, owner=False)

    def shape(self, buffer: DeviceBuffer) -> tuple[int, ...]:
        return buffer.shape

    def launch(self, sig: KernelSignature, args: list, n: int, tpb: int, ipb: int) -> None:
        if n <= 0:
            return
        if not tpb or not ipb:
            raise ValueError(f"kernel {sig.name} was not mapped to the GPU (no launch shape)")
        params = kernel_params(sig, args, n)
        grid = -(-n // ipb)
        if grid > 2**31 - 1:
            raise ValueError(f"kernel {sig.name}: {n} threads exceed the grid limit")
        fn = self.gpu.function(self.ptx, sig.name)
        self.gpu.activate()
        pointers = (ctypes.c_void_p * len(params))(
            *[ctypes.cast(ctypes.byref(p), ctypes.c_void_p) for p in params]
        )
        self.gpu.driver.call("cuLaunchKernel", fn, grid, 1, 1, tpb, 1, 1, 0, None, pointers, None)


def to_device(array: np.ndarray, device: str = "cuda:0") -> DeviceBuffer:
    """Upload `array` once; pass the result as a weight to keep it resident on the GPU."""
    kind, index = parse_device(device)
    if kind != "gpu":
        raise ValueError(f"to_device needs a GPU device ('cuda:N'), got {device!r}")
    return GpuDevice.get(index).upload(array)
