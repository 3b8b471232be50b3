"""Running compiled kernels on the CPU, split across threads.

Each CPU kernel has the entry `void k(i64 lo, i64 hi, u64 *argv)` and runs
the `[lo, hi)` slice of its launch range. A launch cuts the range into a few
contiguous chunks per thread, which the calling thread and persistent worker
threads claim one at a time until none is left: a worker that wakes late, or
a core another process holds, then takes fewer chunks instead of making the
others wait. ctypes releases the GIL for the duration of each call, so chunks
run in parallel.

Idle workers block on a queue. Waking a blocked thread takes tens of
microseconds, a lot against a decode step's ~1 ms, so after each job a
worker first watches a doorbell for a short while (QUANTIR_SPIN_US, default
200 microseconds; 0 turns it off) in a compiled loop that holds no GIL and
pauses between looks; a launch rings the bell after queueing its jobs. Past
that time the worker blocks again: a worker never spins for longer than
that after its last job.
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


SPIN_SOURCE = """
define i64 @quantir_spin(ptr %cell, i64 %seen, i64 %limit) {
entry:
  br label %look
look:
  %i = phi i64 [0, %entry], [%next, %wait]
  %v = load atomic i64, ptr %cell acquire, align 8
  %rung = icmp ne i64 %v, %seen
  br i1 %rung, label %done, label %wait
wait:
  PAUSE
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, %limit
  br i1 %more, label %look, label %done
done:
  ret i64 %v
}
"""
"""Watch `*cell` until it differs from `seen` or `limit` looks have passed; return it."""


class _Doorbell:
    """A counter a launch bumps after queueing jobs, watched by workers between jobs."""

    def __init__(self, spin_seconds: float) -> None:
        self.cell = np.zeros(1, np.int64)
        self.looks = 0
        self._spin: Callable[[int, int, int], int] | None = None
        if spin_seconds > 0:
            self._spin = _compiled_spin()
            if self._spin is not None:
                self.looks = self._calibrate(spin_seconds)

    def _calibrate(self, seconds: float) -> int:
        import time

        assert self._spin is not None
        trial = 2000
        start = time.perf_counter()
        self._spin(self.cell.ctypes.data, int(self.cell[0]), trial)
        per_look = max((time.perf_counter() - start) / trial, 1e-9)
        return max(1, int(seconds / per_look))

    def ring(self) -> None:
        self.cell[0] += 1

    def watch(self, seen: int) -> int:
        """Wait (without the GIL) up to the spin time for a ring after `seen`."""
        if self._spin is None:
            return seen
        return self._spin(self.cell.ctypes.data, seen, self.looks)


def _compiled_spin() -> Callable[[int, int, int], int] | None:
    """The watching loop, compiled for the host; None where it cannot be built."""
    try:
        from quantir.compiler.backend import cpu_codegen

        x86 = cpu_codegen.host_target().triple.startswith(("x86_64", "i686", "i386"))
        pause = "call void @llvm.x86.sse2.pause()" if x86 else ""
        source = SPIN_SOURCE.replace("PAUSE", pause)
        if x86:
            source += "declare void @llvm.x86.sse2.pause()\n"
        obj = LoadedObject(cpu_codegen.compile_object(source))
    except Exception:  # no spinning is always correct, only slower to wake
        return None
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(
        obj.address("quantir_spin")
    )
    fn._keep = obj  # type: ignore[attr-defined]  # the machine code stays mapped
    return fn


def spin_seconds() -> float:
    env = os.environ.get("QUANTIR_SPIN_US", "200")
    try:
        us = float(env)
    except ValueError:
        raise ValueError(f"QUANTIR_SPIN_US must be a number of microseconds, got {env!r}") from None
    if not us >= 0:
        raise ValueError(f"QUANTIR_SPIN_US must be >= 0, got {env!r}")
    return us * 1e-6


class _Workers:
    """Persistent daemon threads, each blocked on its own queue until given a job."""

    def __init__(self) -> None:
        self._inboxes: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()
        self._bell: _Doorbell | None = None

    def _serve(self, inbox: queue.SimpleQueue, bell: _Doorbell) -> None:
        seen = int(bell.cell[0])
        while True:
            seen = bell.watch(seen)  # a ring soon after the last job: no sleep and wake-up
            job, done = inbox.get()
            try:
                job()
                done.put(None)
            except BaseException as e:  # handed to the launching thread
                done.put(e)

    def run(self, job: Callable[[], None], helpers: int) -> None:
        """Run `job` on this thread and on `helpers` workers at once; re-raise a failure."""
        with self._lock:
            if self._bell is None:
                self._bell = _Doorbell(spin_seconds())
            bell = self._bell
            while len(self._inboxes) < helpers:
                inbox: queue.SimpleQueue = queue.SimpleQueue()
                name = f"quantir-{len(self._inboxes)}"
                threading.Thread(
                    target=self._serve, args=(inbox, bell), name=name, daemon=True
                ).start()
                self._inboxes.append(inbox)
            inboxes = self._inboxes[:helpers]
        done: queue.SimpleQueue = queue.SimpleQueue()
        for inbox in inboxes:
            inbox.put((job, done))
        bell.ring()
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
