"""The CPU thread pool: persistent workers that run kernel launches in native code.

A launch of a CPU kernel (`void k(i64 lo, i64 hi, u64 *argv)`, see
docs/runtime-abi.md) over `[0, n)` is cut into chunks that the calling
thread and some workers claim with an atomic counter until none is left.
Everything on that path is a small compiled module (the LLVM IR below),
not Python: posting a launch to a worker, claiming chunks, calling the
kernel, reporting completion and waiting for it. A Python call into it
(`NativePool.run`) releases the GIL once for a whole list of launches, and
each worker is a thread that entered the module's worker loop once and
never comes back to Python. So no launch pays for the GIL, a Python queue
or a thread wake-up per chunk: at a decode step's ~1 ms those cost 10-20 %.

Waiting: a worker that finished a job watches its mailbox for a bounded
time (QUANTIR_SPIN_US, default 200 microseconds) with `pause` between
looks, then sleeps in the kernel (a Linux futex; elsewhere it naps 50
microseconds at a time); the calling thread waits for its helpers the same
way. Every 32 looks a waiting thread yields its core, in case the thread it
waits for is queued on it. Nothing spins longer than that after its last job.

Memory shared with the workers (mailboxes, job slots, settings) is owned
by the pool for the life of the process, so a late reader never touches
freed memory.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quantir.compiler.backend import cpu_codegen

GUIDED_SHARE = 2
"""A chunk is 1/(GUIDED_SHARE * threads) of the items not yet handed out
(`chunk_edges`): claimed dynamically, so a late or preempted thread takes
fewer."""

MAX_HELPERS = 255
"""Workers a pool starts at most (threads beyond that run as fewer chunks)."""

MAX_JOBS = 64
"""Launches one native call runs; longer lists run in several calls."""

# Byte layout of the memory the pool shares with its workers. Fields written
# by different threads sit on different 64-byte lines.
BOX_BYTES = 64  # per worker: i32 gen @0, i32 sleeping @4, ptr job @8
# per launch: i64 next @0 | i32 done @64, i32 main_sleeping @68 | fn @128, argv, edges, chunks,
# helpers
JOB_BYTES = 192
JOB_FIELDS = 128 // 8  # i64 index of `fn`: fn, argv, edges, chunks, helpers follow
CFG_SLOTS = 4  # i64: spin looks, then the addresses of syscall, usleep, sched_yield (0: none)

_SYS_FUTEX = {"x86_64": 202, "AMD64": 202, "aarch64": 98, "arm64": 98}
_FUTEX_WAIT_PRIVATE = 128
_FUTEX_WAKE_PRIVATE = 129

POOL_IR = """
declare void @PAUSE_INTRINSIC()

define internal void @relax() {
  PAUSE_CALL
  ret void
}

; Sleep until *addr may differ from val (spurious returns are fine: callers re-check).
define internal void @wait32(ptr %cfg, ptr %addr, i32 %val) {
entry:
  %sys.slot = getelementptr i64, ptr %cfg, i64 1
  %sys = load ptr, ptr %sys.slot
  %has.sys = icmp ne ptr %sys, null
  br i1 %has.sys, label %futex, label %nap
futex:
  %v = sext i32 %val to i64
  %r = call i64 (i64, ...) %sys(i64 SYS_FUTEX, ptr %addr, i64 FUTEX_WAIT, i64 %v, ptr null)
  ret void
nap:
  %nap.slot = getelementptr i64, ptr %cfg, i64 2
  %usleep = load ptr, ptr %nap.slot
  %has.nap = icmp ne ptr %usleep, null
  br i1 %has.nap, label %sleep, label %done
sleep:
  %r2 = call i32 %usleep(i32 50)
  br label %done
done:
  ret void
}

define internal void @yield(ptr %cfg) {
entry:
  %slot = getelementptr i64, ptr %cfg, i64 3
  %fn = load ptr, ptr %slot
  %has = icmp ne ptr %fn, null
  br i1 %has, label %call, label %done
call:
  %r = call i32 %fn()
  br label %done
done:
  ret void
}

define internal void @wake32(ptr %cfg, ptr %addr) {
entry:
  %sys.slot = getelementptr i64, ptr %cfg, i64 1
  %sys = load ptr, ptr %sys.slot
  %has.sys = icmp ne ptr %sys, null
  br i1 %has.sys, label %futex, label %done
futex:
  %r = call i64 (i64, ...) %sys(i64 SYS_FUTEX, ptr %addr, i64 FUTEX_WAKE, i64 2147483647)
  br label %done
done:
  ret void
}

; Wait until the i32 at %addr differs from %val: `looks` looks with a pause
; between, then sleep (announced through the i32 at %sleeping, so a writer
; knows to wake us). Returns the new value.
define internal i32 @await_change(ptr %cfg, ptr %addr, i32 %val, ptr %sleeping) {
entry:
  %looks = load i64, ptr %cfg
  br label %look
look:
  %i = phi i64 [0, %entry], [%i.next, %maybe.yield], [%i.next, %yield]
  %v = load atomic i32, ptr %addr acquire, align 4
  %changed = icmp ne i32 %v, %val
  br i1 %changed, label %done, label %pause
pause:
  call void @relax()
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, %looks
  br i1 %more, label %maybe.yield, label %sleep
maybe.yield:
  ; Every 32 looks, let another thread of this core run: when the core is
  ; shared (more threads than free cores), the thread we wait for may be
  ; queued right here.
  %phase = and i64 %i.next, 31
  %yield.now = icmp eq i64 %phase, 0
  br i1 %yield.now, label %yield, label %look
yield:
  call void @yield(ptr %cfg)
  br label %look
sleep:
  store atomic i32 1, ptr %sleeping seq_cst, align 4
  %v2 = load atomic i32, ptr %addr seq_cst, align 4
  %changed2 = icmp ne i32 %v2, %val
  br i1 %changed2, label %woken, label %block
block:
  call void @wait32(ptr %cfg, ptr %addr, i32 %val)
  br label %sleep
woken:
  store atomic i32 0, ptr %sleeping seq_cst, align 4
  br label %done
done:
  %result = phi i32 [%v, %look], [%v2, %woken]
  ret i32 %result
}

; Claim chunks of the job until none is left, calling its kernel on each
; (chunk i is [edges[i], edges[i + 1])).
define internal void @run_chunks(ptr %job) {
entry:
  %fn.slot = getelementptr i8, ptr %job, i64 128
  %fn = load ptr, ptr %fn.slot
  %argv.slot = getelementptr i8, ptr %job, i64 136
  %argv = load ptr, ptr %argv.slot
  %edges.slot = getelementptr i8, ptr %job, i64 144
  %edges = load ptr, ptr %edges.slot
  %chunks.slot = getelementptr i8, ptr %job, i64 152
  %chunks = load i64, ptr %chunks.slot
  br label %claim
claim:
  %i = atomicrmw add ptr %job, i64 1 monotonic
  %left = icmp ult i64 %i, %chunks
  br i1 %left, label %run, label %done
run:
  %lo.slot = getelementptr i64, ptr %edges, i64 %i
  %lo = load i64, ptr %lo.slot
  %hi.slot = getelementptr i64, ptr %lo.slot, i64 1
  %hi = load i64, ptr %hi.slot
  call void %fn(i64 %lo, i64 %hi, ptr %argv)
  br label %claim
done:
  ret void
}

; A worker: wait for a job in its mailbox, help with it, report; until the
; job posted is null (the pool stopping).
; `seen` is the mailbox generation the worker starts from (0 for a new box).
define void @quantir_pool_worker(ptr %cfg, ptr %box, i32 %seen0) {
entry:
  %sleeping = getelementptr i8, ptr %box, i64 4
  %job.slot = getelementptr i8, ptr %box, i64 8
  br label %wait
wait:
  %seen = phi i32 [%seen0, %entry], [%gen, %report], [%gen, %wake.main]
  %gen = call i32 @await_change(ptr %cfg, ptr %box, i32 %seen, ptr %sleeping)
  %job = load atomic ptr, ptr %job.slot acquire, align 8
  %stop = icmp eq ptr %job, null
  br i1 %stop, label %exit, label %work
work:
  call void @run_chunks(ptr %job)
  br label %report
report:
  %done = getelementptr i8, ptr %job, i64 64
  %before = atomicrmw add ptr %done, i32 1 seq_cst
  %main.sleeping.slot = getelementptr i8, ptr %job, i64 68
  %main.sleeping = load atomic i32, ptr %main.sleeping.slot seq_cst, align 4
  %wake = icmp ne i32 %main.sleeping, 0
  br i1 %wake, label %wake.main, label %wait
wake.main:
  call void @wake32(ptr %cfg, ptr %done)
  br label %wait
exit:
  ret void
}

; Hand `job` to the worker of mailbox `box`, waking it if it sleeps.
define internal void @post(ptr %cfg, ptr %box, ptr %job) {
entry:
  %job.slot = getelementptr i8, ptr %box, i64 8
  store atomic ptr %job, ptr %job.slot release, align 8
  %g = atomicrmw add ptr %box, i32 1 seq_cst
  %sleeping.slot = getelementptr i8, ptr %box, i64 4
  %sleeping = load atomic i32, ptr %sleeping.slot seq_cst, align 4
  %asleep = icmp ne i32 %sleeping, 0
  br i1 %asleep, label %wake, label %done
wake:
  call void @wake32(ptr %cfg, ptr %box)
  br label %done
done:
  ret void
}

; Post the null job to the first `count` mailboxes: their workers return.
define void @quantir_pool_stop(ptr %cfg, ptr %boxes, i64 %count) {
entry:
  br label %loop
loop:
  %w = phi i64 [0, %entry], [%w.next, %body]
  %more = icmp ult i64 %w, %count
  br i1 %more, label %body, label %done
body:
  %off = mul i64 %w, BOX_BYTES
  %box = getelementptr i8, ptr %boxes, i64 %off
  call void @post(ptr %cfg, ptr %box, ptr null)
  %w.next = add i64 %w, 1
  br label %loop
done:
  ret void
}

; Run `count` jobs one after another on this thread and each job's helpers.
define void @quantir_pool_run(ptr %cfg, ptr %boxes, ptr %jobs, i64 %count) {
entry:
  br label %next.job
next.job:
  %j = phi i64 [0, %entry], [%j.next, %joined]
  %more = icmp ult i64 %j, %count
  br i1 %more, label %start, label %exit
start:
  %off = mul i64 %j, JOB_BYTES
  %job = getelementptr i8, ptr %jobs, i64 %off
  %done = getelementptr i8, ptr %job, i64 64
  %main.sleeping = getelementptr i8, ptr %job, i64 68
  %helpers.slot = getelementptr i8, ptr %job, i64 160
  %helpers = load i64, ptr %helpers.slot
  store i64 0, ptr %job
  store i32 0, ptr %done
  store i32 0, ptr %main.sleeping
  br label %post
post:
  %w = phi i64 [0, %start], [%w.next, %posted]
  %posting = icmp ult i64 %w, %helpers
  br i1 %posting, label %post.one, label %work
post.one:
  %box.off = mul i64 %w, BOX_BYTES
  %box = getelementptr i8, ptr %boxes, i64 %box.off
  call void @post(ptr %cfg, ptr %box, ptr %job)
  br label %posted
posted:
  %w.next = add i64 %w, 1
  br label %post
work:
  call void @run_chunks(ptr %job)
  %helpers32 = trunc i64 %helpers to i32
  br label %join
join:
  %d = load atomic i32, ptr %done acquire, align 4
  %all = icmp eq i32 %d, %helpers32
  br i1 %all, label %joined, label %wait.more
wait.more:
  %d2 = call i32 @await_change(ptr %cfg, ptr %done, i32 %d, ptr %main.sleeping)
  br label %join
joined:
  %j.next = add i64 %j, 1
  br label %next.job
exit:
  ret void
}

; `looks` looks at an untouched word: what the spin setting is calibrated by.
define void @quantir_pool_spin(ptr %cfg, i64 %looks) {
entry:
  br label %look
look:
  %i = phi i64 [0, %entry], [%i.next, %look]
  %v = load atomic i32, ptr %cfg acquire, align 4
  call void @relax()
  %i.next = add i64 %i, 1
  %more = icmp ult i64 %i.next, %looks
  br i1 %more, label %look, label %done
done:
  ret void
}
"""


def spin_seconds() -> float:
    """QUANTIR_SPIN_US in seconds: how long an idle thread watches for work."""
    env = os.environ.get("QUANTIR_SPIN_US", "200")
    try:
        us = float(env)
    except ValueError:
        raise ValueError(f"QUANTIR_SPIN_US must be a number of microseconds, got {env!r}") from None
    if not us >= 0:
        raise ValueError(f"QUANTIR_SPIN_US must be >= 0, got {env!r}")
    return us * 1e-6


def pool_source(triple: str, machine: str) -> str:
    """The pool's LLVM IR for a target (the pause instruction and futex number differ)."""
    if triple.startswith(("x86_64", "i686", "i386")):
        pause = ("llvm.x86.sse2.pause", "call void @llvm.x86.sse2.pause()")
    else:
        pause = ("llvm.donothing", "")
    sys_futex = _SYS_FUTEX.get(machine, 0)
    return (
        POOL_IR.replace("PAUSE_INTRINSIC", pause[0])
        .replace("PAUSE_CALL", pause[1])
        .replace("SYS_FUTEX", str(sys_futex))
        .replace("FUTEX_WAIT", str(_FUTEX_WAIT_PRIVATE))
        .replace("FUTEX_WAKE", str(_FUTEX_WAKE_PRIVATE))
        .replace("JOB_BYTES", str(JOB_BYTES))
        .replace("BOX_BYTES", str(BOX_BYTES))
    )


def _sleep_functions() -> tuple[int, int, int]:
    """Addresses of libc's syscall (where futexes exist), usleep and sched_yield; 0: none."""
    import platform

    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # no C library to call: threads wait by looking only
        return 0, 0, 0

    def address(name: str) -> int:
        fn = getattr(libc, name, None)
        return (ctypes.cast(fn, ctypes.c_void_p).value or 0) if fn is not None else 0

    futex = sys.platform.startswith("linux") and platform.machine() in _SYS_FUTEX
    return address("syscall") if futex else 0, address("usleep"), address("sched_yield")


def _pool_object(source: str, target_key: str) -> bytes:
    """The pool's object code, from the compile cache when it is there: building
    it takes LLVM about 80 ms, a noticeable part of a short process."""
    from quantir.runtime import cache

    key = cache.make_key("thread-pool", target_key, source)
    obj = cache.load(key, cache.RUNTIME)
    if obj is None:
        obj = cpu_codegen.compile_object(source)
        cache.store(key, obj, cache.RUNTIME)
    return obj


_Worker = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)
_Run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_Spin = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)
_Stop = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class NativePool:
    """Worker threads and the shared memory they read; one per process."""

    def __init__(self) -> None:
        import platform

        host = cpu_codegen.host_target()
        self._code = cpu_codegen.LoadedObject(
            _pool_object(pool_source(host.triple, platform.machine()), host.key)
        )
        self._run = _Run(self._code.address("quantir_pool_run"))
        self._worker = _Worker(self._code.address("quantir_pool_worker"))
        self.cfg = np.zeros(CFG_SLOTS, np.int64)
        self.cfg[1:4] = _sleep_functions()
        self.boxes = np.zeros(MAX_HELPERS * BOX_BYTES // 8, np.int64)
        self.jobs = np.zeros((MAX_JOBS, JOB_BYTES // 8), np.int64)
        self.workers = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # one list of launches at a time
        self.cfg[0] = self._calibrate(spin_seconds())

    def _calibrate(self, seconds: float) -> int:
        """Looks per `seconds` of watching (at least 1: a thread always looks once)."""
        import time

        if seconds <= 0:
            return 1
        spin = _Spin(self._code.address("quantir_pool_spin"))
        trial = 4000
        start = time.perf_counter()
        spin(self.cfg.ctypes.data, trial)
        per_look = max((time.perf_counter() - start) / trial, 1e-9)
        return max(1, int(seconds / per_look))

    def _start_workers(self, count: int) -> None:
        cfg, boxes = self.cfg.ctypes.data, self.boxes.ctypes.data
        while self.workers < count:
            box = boxes + self.workers * BOX_BYTES
            # ctypes drops the GIL for the call, which returns only when the
            # pool stops: the thread lives in the worker loop until then.
            thread = threading.Thread(
                target=self._worker,
                args=(cfg, box, 0),
                name=f"quantir-{self.workers}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
            self.workers += 1

    def stop(self) -> None:
        """Send every worker out of the worker loop and wait for it: the loop's
        code must not be unmapped (at interpreter exit) while a thread is in it."""
        with self._lock:
            stop = _Stop(self._code.address("quantir_pool_stop"))
            stop(self.cfg.ctypes.data, self.boxes.ctypes.data, self.workers)
            for thread in self._threads:
                thread.join(timeout=5)
            self._threads.clear()
            self.workers = 0

    def run(self, launches: Sequence[tuple[int, int, int]], threads: int) -> None:
        """Run (kernel address, argv address, n) launches in order, each over
        `[0, n)` with up to `threads` threads; returns when all are done."""
        self.run_table(LaunchTable.of(launches, threads))

    def run_table(self, table: LaunchTable) -> None:
        """Run the launches of `table`; their argv must stay valid until this returns."""
        rows = table.rows
        if not len(rows):
            return
        with self._lock:
            if table.helpers > self.workers:
                self._start_workers(table.helpers)
            jobs = self.jobs
            for start in range(0, len(rows), MAX_JOBS):
                part = rows[start : start + MAX_JOBS]
                jobs[: len(part), JOB_FIELDS : JOB_FIELDS + 5] = part
                self._run(self.cfg.ctypes.data, self.boxes.ctypes.data, jobs.ctypes.data, len(part))


@functools.lru_cache(maxsize=256)
def chunk_edges(n: int, parts: int) -> np.ndarray:
    """Where the chunks of a launch over `[0, n)` on `parts` threads begin and end.

    Guided: each chunk is about 1/(2 * parts) of what is left (at least 1), so
    the first chunks are large (few claims) and the last are single items:
    threads that claim until none is left finish within about one item of
    each other. One chunk for one thread."""
    edges = [0, n]
    if parts > 1:
        edges = [0]
        while edges[-1] < n:
            left = n - edges[-1]
            edges.append(edges[-1] + max(1, -(-left // (GUIDED_SHARE * parts))))
    array = np.array(edges, np.int64)
    array.flags.writeable = False  # shared: kept by this cache and by launch tables
    return array


@dataclass(frozen=True)
class LaunchTable:
    """Launches described for the pool: one row per launch (kernel address,
    argv address, address of its chunk edges, chunk count, helpers), built once
    for a call repeated many times (a replay keeps its table)."""

    rows: np.ndarray
    edges: tuple[np.ndarray, ...]  # the rows point into these
    helpers: int  # the most helpers any launch takes

    @staticmethod
    def of(launches: Sequence[tuple[int, int, int]], threads: int) -> LaunchTable:
        rows, edges = [], []
        for fn, argv, n in launches:
            if n <= 0:
                continue  # e.g. the AMX tile layout of x, below 16 rows
            parts = min(threads, n, MAX_HELPERS + 1)
            chunks = chunk_edges(n, parts)
            edges.append(chunks)
            rows.append((fn, argv, chunks.ctypes.data, len(chunks) - 1, parts - 1))
        table = np.array(rows, np.int64).reshape(len(rows), 5)
        return LaunchTable(table, tuple(edges), max((r[4] for r in rows), default=0))


_pool: NativePool | None = None
_pool_lock = threading.Lock()


def pool() -> NativePool:
    """The process's pool, built on first use."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = NativePool()
    return _pool


def _forget_after_fork() -> None:
    """A forked child has none of the parent's threads: it starts a pool of its own."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


def _stop_at_exit() -> None:
    """Workers leave the pool's code before the interpreter frees it."""
    if _pool is not None:
        _pool.stop()


atexit.register(_stop_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
