"""CPU temporaries are reused across calls (BufferPool), within a byte limit."""

from __future__ import annotations

import numpy as np

from quantir.runtime.api import qmatmul
from quantir.runtime.buffers import BufferPool
from quantir.runtime.quantize import quantize


def test_a_given_buffer_is_taken_again_for_the_same_shape_and_dtype() -> None:
    pool = BufferPool()
    a = pool.take((4, 32), "int8")
    assert a.shape == (4, 32) and a.dtype == np.int8 and a.ctypes.data % 64 == 0
    pool.give(a)
    assert pool.take((4, 32), "float32") is not a  # another dtype: a new buffer
    assert pool.take((4, 32), "int8") is a
    assert pool.take((4, 32), "int8") is not a  # taken once only


def test_the_least_recently_given_shapes_go_past_the_limit() -> None:
    pool = BufferPool(limit=3 * 1024)
    old, mid, new = (pool.take((1024,), "uint8") for _ in range(3))
    other = pool.take((2048,), "uint8")
    for b in (old, mid, new):
        pool.give(b)
    pool.give(other)  # 5 KiB given: the two oldest 1 KiB buffers are dropped
    kept = [pool.take((1024,), "uint8") for _ in range(2)]
    assert kept[0] is new and kept[1] is not mid and kept[1] is not old
    assert pool.take((2048,), "uint8") is other
    pool.give(np.empty(4096, np.uint8))  # over the limit on its own: not kept
    assert pool.take((4096,), "uint8").nbytes == 4096


def test_repeated_calls_reuse_temporaries_and_stay_correct() -> None:
    rng = np.random.default_rng(0)
    w = quantize("q4_k", rng.standard_normal((32, 256)).astype(np.float32))
    xs = [rng.standard_normal((m, 256)).astype(np.float32) for m in (1, 3, 1, 40, 1)]
    first = [qmatmul("q4_k", x, w) for x in xs]
    again = [qmatmul("q4_k", x, w) for x in xs]  # temporaries now come from the pool
    for a, b in zip(first, again):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
