"""The native CPU thread pool: every chunk once, bounded spinning, clean stop, fork."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from quantir.compiler.backend import cpu_codegen
from quantir.runtime import cpu_pool

# A kernel with the CPU entry convention: count[i] += 1 (atomically) for i in
# [lo, hi); argv[0] is the address of the i32 counts, argv[1] a busy-loop length
# that makes chunks take long enough for threads to overlap.
COUNT_KERNEL = """
define void @count(i64 %lo, i64 %hi, ptr %argv) {
entry:
  %counts = load ptr, ptr %argv
  %spin.slot = getelementptr i64, ptr %argv, i64 1
  %spin = load i64, ptr %spin.slot
  br label %loop
loop:
  %i = phi i64 [%lo, %entry], [%i.next, %busy.done]
  %more = icmp slt i64 %i, %hi
  br i1 %more, label %body, label %done
body:
  %slot = getelementptr i32, ptr %counts, i64 %i
  %old = atomicrmw add ptr %slot, i32 1 monotonic
  br label %busy
busy:
  %j = phi i64 [0, %body], [%j.next, %busy]
  %j.next = add i64 %j, 1
  %j.more = icmp slt i64 %j.next, %spin
  br i1 %j.more, label %busy, label %busy.done
busy.done:
  %i.next = add i64 %i, 1
  br label %loop
done:
  ret void
}
"""


@pytest.fixture(scope="module")
def count_kernel():
    obj = cpu_codegen.LoadedObject(cpu_codegen.compile_object(COUNT_KERNEL))
    yield obj.address("count"), obj


def _launch(pool: cpu_pool.NativePool, fn: int, n: int, threads: int, spin: int = 0):
    counts = np.zeros(max(n, 1), np.int32)
    argv = np.array([counts.ctypes.data, spin], np.uint64)
    pool.run([(fn, argv.ctypes.data, n)], threads)
    return counts[:n]


def test_every_index_runs_once_across_back_to_back_launches(count_kernel) -> None:
    fn, _ = count_kernel
    pool = cpu_pool.pool()
    for round_ in range(120):
        n = [1, 2, 3, 17, 64, 1000][round_ % 6]
        threads = [1, 2, 3, 5][round_ % 4]
        counts = _launch(pool, fn, n, threads, spin=2000 if round_ % 5 == 0 else 0)
        assert np.array_equal(counts, np.ones(n, np.int32)), (round_, n, threads)
        if round_ % 20 == 0:
            time.sleep(0.005)  # past the spin time: workers sleep, then are woken


def test_a_list_of_launches_runs_in_order_and_empty_ones_are_skipped(count_kernel) -> None:
    fn, _ = count_kernel
    counts = np.zeros(100, np.int32)
    argvs = [np.array([counts.ctypes.data + 4 * start, 0], np.uint64) for start in (0, 50)]
    table = cpu_pool.LaunchTable.of(
        [
            (fn, argvs[0].ctypes.data, 50),
            (fn, argvs[1].ctypes.data, 0),
            (fn, argvs[1].ctypes.data, 50),
        ],
        threads=2,
    )
    assert len(table.rows) == 2  # the launch over an empty range is left out
    assert list(table.rows[:, 4]) == [1, 1] and table.helpers == 1
    assert [int(e[-1]) for e in table.edges] == [50, 50]
    cpu_pool.pool().run_table(table)
    assert np.array_equal(counts, np.ones(100, np.int32))


def test_more_jobs_than_one_native_call_takes(count_kernel) -> None:
    fn, _ = count_kernel
    counts = np.zeros(cpu_pool.MAX_JOBS * 2 + 3, np.int32)
    argvs = [np.array([counts.ctypes.data + 4 * i, 0], np.uint64) for i in range(counts.size)]
    cpu_pool.pool().run([(fn, a.ctypes.data, 1) for a in argvs], threads=2)
    assert np.array_equal(counts, np.ones(counts.size, np.int32))


def test_idle_workers_sleep_after_the_spin_time_and_stop_cleanly(
    count_kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker spins past QUANTIR_SPIN_US: it announces itself asleep in its
    mailbox (and blocks in the kernel); `stop` brings every thread back."""
    fn, _ = count_kernel
    monkeypatch.setenv("QUANTIR_SPIN_US", "1000")
    pool = cpu_pool.NativePool()  # a pool of its own, stopped below
    try:
        assert np.array_equal(_launch(pool, fn, 256, 3), np.ones(256, np.int32))
        assert pool.workers == 2
        # Each mailbox: i32 generation, then the i32 "sleeping" flag.
        boxes = pool.boxes.view(np.int32).reshape(-1, cpu_pool.BOX_BYTES // 4)

        def asleep() -> bool:
            return bool(all(boxes[:2, 1]))

        deadline = time.monotonic() + 10
        while not asleep() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert asleep(), "workers still spinning long after the spin time"
        assert np.array_equal(_launch(pool, fn, 256, 3), np.ones(256, np.int32))  # woken
    finally:
        threads = list(pool._threads)
        pool.stop()
    assert threads and not any(t.is_alive() for t in threads)
    assert pool.workers == 0


def test_no_spinning_when_turned_off(count_kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    fn, _ = count_kernel
    monkeypatch.setenv("QUANTIR_SPIN_US", "0")
    pool = cpu_pool.NativePool()
    try:
        assert pool.cfg[0] == 1  # one look, then sleep
        for _ in range(20):
            assert np.array_equal(_launch(pool, fn, 40, 2), np.ones(40, np.int32))
    finally:
        pool.stop()


@pytest.mark.parametrize("n", [1, 2, 7, 256, 100_000])
@pytest.mark.parametrize("parts", [1, 2, 3, 16])
def test_chunks_cover_the_range_and_shrink_to_single_items(n: int, parts: int) -> None:
    edges = cpu_pool.chunk_edges(n, parts)
    sizes = np.diff(edges)
    assert edges[0] == 0 and edges[-1] == n and (sizes > 0).all()
    if parts == 1:
        assert len(sizes) == 1
    else:
        assert (np.diff(sizes) <= 0).all()  # never growing
        assert sizes[-1] == 1 and sizes[0] <= -(-n // (2 * parts))
        assert len(sizes) <= 2 * parts * (np.log(n) + 2)  # few claims


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_spin_setting_is_checked(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("QUANTIR_SPIN_US", value)
    with pytest.raises(ValueError, match="QUANTIR_SPIN_US"):
        cpu_pool.spin_seconds()


def _run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=240
    )


def test_exit_with_live_workers_and_fork_children_get_their_own_pool() -> None:
    """The interpreter exits cleanly while workers exist, and a forked child
    (which has none of its parent's threads) runs multi-threaded launches."""
    proc = _run_child(
        """
        import os
        import numpy as np
        from quantir.runtime.api import qmatmul
        from quantir.runtime.quantize import quantize

        rng = np.random.default_rng(0)
        w = quantize("q4_0", rng.standard_normal((64, 256)).astype(np.float32))
        x = rng.standard_normal((3, 256)).astype(np.float32)
        want = qmatmul("q4_0", x, w, threads=2)
        pid = os.fork()
        if pid == 0:
            got = qmatmul("q4_0", x, w, threads=2)
            os._exit(0 if np.array_equal(got, want) else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert np.array_equal(qmatmul("q4_0", x, w, threads=2), want)
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


@pytest.mark.parametrize("libc", [True, False])
def test_waiting_without_futexes_or_any_sleep_call(count_kernel, libc: bool) -> None:
    """Where there is no futex (other systems), waits nap with usleep; with no
    C library at all they only look and yield. Launches stay correct."""
    fn, _ = count_kernel
    pool = cpu_pool.NativePool()
    try:
        pool.cfg[1] = 0  # no futex
        if not libc:
            pool.cfg[2] = pool.cfg[3] = 0  # no usleep, no sched_yield
        for round_ in range(30):
            assert np.array_equal(_launch(pool, fn, 64, 3), np.ones(64, np.int32))
            if round_ % 10 == 0:
                time.sleep(0.002)
    finally:
        pool.stop()


def test_the_pool_code_comes_from_the_compile_cache(
    count_kernel, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built once per cache directory; a corrupt entry is rebuilt, not loaded."""
    fn, _ = count_kernel
    monkeypatch.setenv("QUANTIR_CACHE_DIR", str(tmp_path))
    compiles = [0]
    real = cpu_codegen.compile_object

    def counting(source):
        compiles[0] += 1
        return real(source)

    monkeypatch.setattr(cpu_codegen, "compile_object", counting)
    for expected in (1, 1):
        pool = cpu_pool.NativePool()
        try:
            assert np.array_equal(_launch(pool, fn, 100, 2), np.ones(100, np.int32))
        finally:
            pool.stop()
        assert compiles[0] == expected
    (entry,) = (tmp_path / "runtime").glob("*.qbin")
    entry.write_bytes(entry.read_bytes()[:-9] + b"corrupted")
    pool = cpu_pool.NativePool()
    pool.stop()
    assert compiles[0] == 2
