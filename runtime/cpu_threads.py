"""Running compiled kernels on the CPU, split across threads.

Each CPU kernel has the entry `void k(i64 lo, i64 hi, u64 *argv)` and runs
the `[lo, hi)` slice of its launch range. Launches run on the process's
native thread pool (runtime/cpu_pool.py): the range is cut into a few
contiguous chunks per thread, which the calling thread and persistent
workers claim one at a time until none is left, so a worker that wakes
late, or a core another process holds, takes fewer chunks instead of
making the others wait.

The thread count is the `threads=` argument, else QUANTIR_NUM_THREADS, else
every core.
"""

from __future__ import annotations

import os

import numpy as np

from quantir.compiler.backend.calling_convention import KernelSignature
from quantir.compiler.backend.cpu_codegen import LoadedObject
from quantir.runtime.cpu_pool import pool


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


class CpuKernels:
    """The kernels of one compiled module, launchable by name."""

    def __init__(
        self,
        obj: LoadedObject,
        signatures: dict[str, KernelSignature],
        symbols: dict[str, str] | None = None,
    ):
        """`symbols` maps a kernel's name to its symbol in the code (default: its name)."""
        self._obj = obj  # keeps the machine code mapped
        self.signatures = signatures
        symbols = symbols or {}
        self.addresses = {name: obj.address(symbols.get(name, name)) for name in signatures}

    def launch(self, name: str, argv: np.ndarray, n: int, threads: int) -> None:
        """Run kernel `name` over `[0, n)` with `argv` on up to `threads` threads."""
        pool().run([(self.addresses[name], argv.ctypes.data, n)], threads)
