"""CPU calls replay their launches, planned once per argument shapes (runtime/replay.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quantir.compiler.graph import DType, Graph, TensorType, ops
from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.api import qmatmul
from quantir.runtime.buffers import BufferError
from quantir.runtime.compiled_graph import compile_on_device
from quantir.runtime.program import Program
from quantir.runtime.quantize import quantize

K, N = 256, 48


@pytest.fixture(scope="module")
def weight() -> np.ndarray:
    rng = np.random.default_rng(1)
    return quantize("q4_k", rng.standard_normal((N, K)).astype(np.float32))


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)


def _count_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many host plan steps have been interpreted (planning included)."""
    steps = [0]
    original = Program._run_step

    def counting(self, step, regs, dev):
        steps[0] += 1
        return original(self, step, regs, dev)

    monkeypatch.setattr(Program, "_run_step", counting)
    return steps


def test_the_plan_is_interpreted_once_per_shapes(monkeypatch, weight) -> None:
    steps = _count_steps(monkeypatch)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, K)).astype(np.float32)
    want = qmatmul("q4_k", x, weight, threads=2)
    assert steps[0] > 0
    planned = steps[0]
    out = np.empty((3, N), np.float32)
    for _ in range(3):  # same shapes: replayed, with or without out=
        assert np.array_equal(_bits(qmatmul("q4_k", x, weight, threads=2, out=out)), _bits(want))
        assert np.array_equal(_bits(qmatmul("q4_k", x, weight, threads=2)), _bits(want))
    assert steps[0] == planned
    x5 = rng.standard_normal((5, K)).astype(np.float32)
    y5 = qmatmul("q4_k", x5, weight, threads=2)  # new shapes: planned once more
    assert steps[0] > planned
    again = qmatmul("q4_k", x5, weight, threads=2)
    assert np.array_equal(_bits(again), _bits(y5))


def test_new_buffers_of_known_shapes_are_patched_in(weight) -> None:
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, K)).astype(np.float32) for _ in range(4)]
    outs = [np.full((2, N), np.nan, np.float32) for _ in range(4)]
    for x, out in zip(xs, outs):
        qmatmul("q4_k", x, weight, out=out)
    for x, out in zip(xs, outs):
        assert np.array_equal(_bits(out), _bits(qmatmul("q4_k", x, weight, threads=1)))


def _two_input_program() -> Program:
    """y = qmatmul(a, w) + qmatmul(b, w): two inputs of one shape."""
    enc = QuantizationEncoding.Q4_K
    row_bytes = K // 256 * 144
    types = [
        TensorType(DType.float32, ["m", K]),
        TensorType(DType.float32, ["m", K]),
        TensorType(DType.uint8, ["n", row_bytes]),
    ]
    graph = Graph("two", input_types=types, input_names=["a", "b", "w"])
    a, b, w = graph.inputs
    graph.output(ops.qmatmul(enc, None, a, w) + ops.qmatmul(enc, None, b, w))
    return compile_on_device(graph.to_mlir(), "two", threads=2)


def test_one_array_given_twice_when_planned_does_not_tie_the_slots(weight) -> None:
    """Planned with the same array as both inputs, a later call with two
    different arrays still reads each from its own argument."""
    program = _two_input_program()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, K)).astype(np.float32)
    zero = np.zeros_like(x)
    (twice,) = program([x, x, weight])
    (once,) = program([x, zero, weight])
    (other,) = program([zero, x, weight])
    single = qmatmul("q4_k", x, weight)
    np.testing.assert_allclose(twice, 2 * single, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(once, single, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(other, single, rtol=1e-5, atol=1e-4)


def test_buffer_errors_after_replayed_calls(weight) -> None:
    """A replayed shape skips no check: layout, writability, overlap and shape
    errors are still the checker's, and nothing is written."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, K)).astype(np.float32)
    out = np.empty((4, N), np.float32)
    for _ in range(2):
        qmatmul("q4_k", x, weight, out=out)
    wide = rng.standard_normal((4, 2 * K)).astype(np.float32)
    with pytest.raises(BufferError, match="C-contiguous"):
        qmatmul("q4_k", wide[:, ::2], weight, out=out)
    frozen = np.zeros((4, N), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(BufferError, match="read-only"):
        qmatmul("q4_k", x, weight, out=frozen)
    assert not frozen.any()
    both = np.zeros(4 * K + 4 * N, np.float32)
    x_in, out_in = both[: 4 * K].reshape(4, K), both[4 * K - 8 :][: 4 * N].reshape(4, N)
    x_in[...] = x
    with pytest.raises(BufferError, match="overlaps"):
        qmatmul("q4_k", x_in, weight, out=out_in)
    with pytest.raises(BufferError, match="shape"):
        qmatmul("q4_k", x, weight, out=np.empty((4, N + 1), np.float32))
    with pytest.raises(BufferError, match="float32"):
        qmatmul("q4_k", x, weight, out=np.empty((4, N), np.float64))


def test_concurrent_calls_of_one_shape_stay_correct(weight) -> None:
    """A replay serves one call at a time; a concurrent call takes the
    interpreted path, with its own temporaries."""
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((8, K)).astype(np.float32) for _ in range(4)]
    want = [qmatmul("q4_k", x, weight, threads=2) for x in xs]
    bad: list[int] = []

    def worker(i: int) -> None:
        out = np.empty((8, N), np.float32)
        for _ in range(30):
            qmatmul("q4_k", xs[i], weight, threads=2, out=out)
            if not np.array_equal(_bits(out), _bits(want[i])):
                bad.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_replays_per_module_are_bounded(weight) -> None:
    program = compile_on_device(*_one_op(weight), threads=1)  # the eager one-op graph
    rng = np.random.default_rng(7)
    for m in range(1, 40):
        x = rng.standard_normal((m, K)).astype(np.float32)
        (y,) = program([x, weight])
        assert y.shape == (m, N)
    replays = program.device.replays  # type: ignore[attr-defined]
    assert len(replays._replays) <= replays.limit
    x1 = rng.standard_normal((1, K)).astype(np.float32)  # M=1's replay is long gone
    out = np.empty((1, N), np.float32)
    program([x1, weight], outputs=[out])
    program([x1, weight], outputs=[out])  # a shape bind checked, replayed again
    assert np.array_equal(_bits(out), _bits(qmatmul("q4_k", x1, weight, threads=1)))


def _one_op(weight: np.ndarray) -> tuple[str, str]:
    from quantir.runtime.api import eager_source

    source, _, _ = eager_source("qmatmul", "q4_k", weight)
    return source, "qmatmul"


def test_remembered_eager_calls_still_check_what_differs(weight) -> None:
    """The eager API remembers a call's graph by the weight's and x's dtypes and
    shapes: a call that differs in any of them is checked in full."""
    x = np.ones((2, K), np.float32)
    qmatmul("q4_k", x, weight)
    qmatmul("q4_k", x, weight)
    with pytest.raises(BufferError, match="float32"):
        qmatmul("q4_k", x.astype(np.float64), weight)
    with pytest.raises(BufferError, match=r"K of the q4_k weight\), got \[2, 288\]"):
        qmatmul("q4_k", np.ones((2, K + 32), np.float32), weight)
    with pytest.raises(BufferError, match="whole number"):
        qmatmul("q4_k", x, weight[:, :100].copy())
    with pytest.raises(ValueError, match="unknown quantization encoding"):
        qmatmul("q4_q", x, weight)


def test_a_cleared_compile_cache_is_not_bypassed(monkeypatch, weight) -> None:
    from quantir.runtime import jit
    from quantir.runtime.api import eager_source

    source, _, _ = eager_source("qmatmul", "q4_k", weight)
    first = compile_on_device(source, "qmatmul", threads=1)
    assert compile_on_device(source, "qmatmul", threads=1) is first
    monkeypatch.setattr(jit, "_memory", {})
    monkeypatch.setenv("QUANTIR_CACHE", "0")
    assert compile_on_device(source, "qmatmul", threads=1) is not first


def test_a_remembered_gptq_call_checks_g_idx_values_every_time() -> None:
    """Kernels index with g_idx: a GPTQ layer's remembered call re-reads it."""
    from quantir.runtime.gptq import quantize_gptq_rtn

    rng = np.random.default_rng(8)
    layer = quantize_gptq_rtn(rng.standard_normal((N, K)) * 0.02, 4, 128, sym=False)
    x = rng.standard_normal((1, K)).astype(np.float32)
    want = qmatmul(layer, x)
    assert np.array_equal(_bits(qmatmul(layer, x)), _bits(want))
    layer.g_idx[5] = 1000
    out = np.zeros((1, N), np.float32)
    with pytest.raises(BufferError, match=r"g_idx\[5\] = 1000"):
        qmatmul(layer, x, out=out)
    assert not out.any()


def _weighted_graph():
    """y = qmatmul(x, w1) + qmatmul(x, w2), the weights by name."""
    from quantir.compiler.graph import Weight
    from quantir.runtime.compiled_graph import compile_graph

    enc = QuantizationEncoding.Q4_K
    with Graph("two_weights", input_types=[TensorType(DType.float32, ["m", K])]) as g:
        (x,) = g.inputs
        w1 = g.add_weight(Weight("w1", DType.uint8, [N, K], quantization_encoding=enc))
        w2 = g.add_weight(Weight("w2", DType.uint8, [N, K], quantization_encoding=enc))
        g.output(ops.qmatmul(enc, None, x, w1) + ops.qmatmul(enc, None, x, w2))
    return compile_graph(g, threads=2)


def test_graph_calls_with_weights_replay_and_still_check_them(weight) -> None:
    compiled = _weighted_graph()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, K)).astype(np.float32)
    other = quantize("q4_k", rng.standard_normal((N, K)).astype(np.float32))
    (first,) = compiled(x, weights={"w1": weight, "w2": other})
    (again,) = compiled(x, weights={"w1": weight, "w2": other})
    assert np.array_equal(_bits(first), _bits(again)) and again is not first
    (swapped,) = compiled(x, weights={"w1": other, "w2": other})  # new arrays, same shapes
    np.testing.assert_allclose(swapped, 2 * qmatmul("q4_k", x, other), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="w2"):
        compiled(x, weights={"w1": weight})
    with pytest.raises(ValueError, match="w2"):
        compiled(x, weights={"w1": weight, "w2": other[:, :100]})
    wide = np.zeros((N, 288), np.uint8)
    wide[:, ::2] = other
    with pytest.raises(ValueError, match="w2"):
        compiled(x, weights={"w1": weight, "w2": wide[:, ::2]})


def test_a_gguf_model_passed_call_after_call_is_bound_once(monkeypatch) -> None:
    from pathlib import Path

    from quantir.runtime.compiled_graph import CompiledGraph, compile_graph
    from quantir.runtime.gguf import open_gguf

    path = Path(__file__).parents[2] / "examples" / "tiny-llama-q4_k_m.gguf"
    model = open_gguf(path)
    t = next(t for t in model.tensors if t.encoding is QuantizationEncoding.Q4_K)
    with Graph("one", input_types=[TensorType(DType.float32, [1, t.shape[1]])]) as g:
        g.output(ops.qmatmul(t.encoding, None, g.inputs[0], g.add_weight(t.as_weight())))
    compiled = compile_graph(g, threads=2)
    binds = [0]
    real = CompiledGraph.bind_weights

    def counting(self, weights=None):
        binds[0] += 1
        return real(self, weights)

    monkeypatch.setattr(CompiledGraph, "bind_weights", counting)
    x = np.random.default_rng(10).standard_normal((1, t.shape[1])).astype(np.float32)
    results = [compiled(x, weights=model)[0] for _ in range(3)]
    assert binds[0] == 1
    assert all(np.array_equal(_bits(r), _bits(results[0])) for r in results)
    np.testing.assert_allclose(
        results[0], qmatmul(t, x), rtol=1e-6, atol=1e-6 * np.abs(results[0]).max()
    )
    compiled(x, weights=open_gguf(path))  # another model object: bound again
    assert binds[0] == 2
