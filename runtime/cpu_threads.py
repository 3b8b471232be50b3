"""Running compiled kernels on the CPU, split across threads.

Each CPU kernel has the entry `void k(i64 lo, i64 hi, u64 *argv)` and runs
the `[lo, hi)` slice of its launch range. A launch cuts the range into one
contiguous slice per thread and calls the kernel from a thread pool; ctypes
releases the GIL for the duration of each call, so slices run in parallel.
The thread count is the `threads=` argument, else QUANTIR_NUM_THREADS, else
every core.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from quantir.compiler.backend.calling_convention import KernelSignature
from quantir.compiler.backend.cpu_codegen import LoadedObject

KernelFn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def default_threads() -> int:
    env = os.environ.get("QUANTIR_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"QUANTIR_NUM_THREADS must be a positive integer, got {env!r}"
            ) from None
        if n < 1:
            raise ValueError(f"QUANTIR_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    return os.cpu_count() or 1


def resolve_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if type(threads) is not int or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="quantir")
            _pool_size = n
            if old is not None:
                old.shutdown(wait=False)
        return _pool


class CpuKernels:
    """The kernels of one compiled module, callable by name."""

    def __init__(self, obj: LoadedObject, signatures: dict[str, KernelSignature]):
        self._obj = obj  # keeps the machine code mapped
        self.signatures = signatures
        self._fns = {name: KernelFn(obj.address(name)) for name in signatures}

    def launch(self, name: str, argv: np.ndarray, n: int, threads: int) -> None:
        fn = self._fns[name]
        ptr = argv.ctypes.data
        if n <= 0:
            return
        parts = min(threads, n)
        if parts <= 1:
            fn(0, n, ptr)
            return
        bounds = [n * i // parts for i in range(parts + 1)]
        pool = _get_pool(parts)
        futures = [pool.submit(fn, bounds[i], bounds[i + 1], ptr) for i in range(1, parts)]
        fn(bounds[0], bounds[1], ptr)  # the calling thread takes the first slice
        for f in futures:
            f.result()
