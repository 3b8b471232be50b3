"""Workers watch a doorbell for a bounded time after each job (QUANTIR_SPIN_US)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from quantir.runtime import cpu_threads


def test_the_watch_returns_at_a_ring_and_gives_up_after_its_looks() -> None:
    bell = cpu_threads._Doorbell(spin_seconds=0.05)
    assert bell.looks > 0, "the watching loop compiles on this host"
    seen = int(bell.cell[0])
    start = time.perf_counter()
    assert bell.watch(seen) == seen  # nobody rings: it gives up
    waited = time.perf_counter() - start
    assert waited < 5.0  # bounded (0.05 s calibrated; generous for loaded machines)

    bell.looks = 10**12  # would watch for hours: only a ring ends it
    ringer = threading.Timer(0.05, bell.ring)
    ringer.start()
    assert bell.watch(seen) == seen + 1
    ringer.join()


def test_no_spinning_when_turned_off() -> None:
    bell = cpu_threads._Doorbell(spin_seconds=0.0)
    assert bell.looks == 0
    assert bell.watch(int(bell.cell[0])) == int(bell.cell[0])


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_spin_setting_is_checked(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("QUANTIR_SPIN_US", value)
    with pytest.raises(ValueError, match="QUANTIR_SPIN_US"):
        cpu_threads.spin_seconds()


def test_launches_back_to_back_run_every_chunk_once() -> None:
    """Jobs queued while workers watch the bell (or sleep) are all run, once."""
    seen: list[int] = []
    lock = threading.Lock()

    def job_of(round_: int):
        claim = iter(range(8))

        def job() -> None:
            for i in claim:  # next() under the GIL: each chunk claimed once
                with lock:
                    seen.append(round_ * 8 + i)

        return job

    for round_ in range(50):
        cpu_threads._workers.run(job_of(round_), 1)
        if round_ % 10 == 0:
            time.sleep(0.002)  # past the spin time: the worker blocks, then wakes
    assert sorted(seen) == list(range(400))
    assert np.unique(seen).size == 400
