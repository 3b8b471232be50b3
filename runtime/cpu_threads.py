"""Running compiled kernels on the CPU, split across threads.

Each CPU kernel has the entry `void k(i64 lo, i64 hi, u64 *argv)` and runs
the `[lo, hi)` slice of its launch range. A launch cuts the range into a few
contiguous chunks per thread, which the calling thread and persistent worker
threads claim one at a time until none is left: a worker that wakes late, or
a core another process holds, then takes fewer chunks instead of making the
others wait. ctypes releases the GIL for the duration of each call, so chunks
run in parallel. Idle workers block on a queue (they never spin).
The thread count is the `threads=` argument, else QUANTIR_NUM_THREADS, else
every core.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import queue
import threading
from collections.abc import Callable

import numpy as np

from quantir.compiler.backend.calling_convention import KernelSignature
from quantir.compiler.backend.cpu_codegen import LoadedObject

KernelFn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)

CHUNKS_PER_THREAD = 4
"""Chunks a launch is cut into per thread (claimed dynamically)."""


class _Workers:
    """Persistent daemon threads, each blocked on its own queue until given a job."""

    def __init__(self) -> None:
        self._inboxes: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while True:
            job, done = inbox.get()
            try:
                job()
                done.put(None)
            except BaseException as e:  # handed to the launching thread
                done.put(e)

    def run(self, job: Callable[[], None], helpers: int) -> None:
        """Run `job` on this thread and on `helpers` workers at once; re-raise a failure."""
        with self._lock:
            while len(self._inboxes) < helpers:
                inbox: queue.SimpleQueue = queue.SimpleQueue()
                name = f"quantir-{len(self._inboxes)}"
                threading.Thread(target=self._serve, args=(inbox,), name=name, daemon=True).start()
                self._inboxes.append(inbox)
            inboxes = self._inboxes[:helpers]
        done: queue.SimpleQueue = queue.SimpleQueue()
        for inbox in inboxes:
            inbox.put((job, done))
        job()
        errors = [done.get() for _ in inboxes]
        for e in errors:
            if e is not None:
                raise e


_workers = _Workers()


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
    """The kernels of one compiled module, callable by name."""

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
        self._fns = {name: KernelFn(obj.address(symbols.get(name, name))) for name in signatures}

    def launch(self, name: str, argv: np.ndarray, n: int, threads: int) -> None:
        fn = self._fns[name]
        ptr = argv.ctypes.data
        if n <= 0:
            return
        parts = min(threads, n)
        if parts <= 1:
            fn(0, n, ptr)
            return
        chunks = min(n, parts * CHUNKS_PER_THREAD)
        bounds = [n * i // chunks for i in range(chunks + 1)]
        claim = itertools.count()  # next() is atomic under the GIL

        def work() -> None:
            while (i := next(claim)) < chunks:
                fn(bounds[i], bounds[i + 1], ptr)

        _workers.run(work, parts - 1)
