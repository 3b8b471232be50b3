"""ggml's CPU mul_mat through ggml-python's ctypes bindings: the speed anchor.

The path llama.cpp runs on the CPU: activations quantized to int8 blocks,
integer dot products, ggml's own thread pool. Two objects:

* `GGMLWeight`: a packed [N, K] weight in a GGUF block type, quantized by
  ggml's own quantizer (`ggml_quantize_chunk`) into a ggml tensor; `packed`
  is a numpy uint8 [N, row_bytes] view of the same bytes, which is what
  quantir is handed (no copy, so both sides read identical bytes).
* `GGMLMatmul`: y [M, N] = x [M, K] @ W.T (`ggml_mul_mat(W, x)`), with x and
  y numpy views of the ggml tensors, allocated once. `compute(threads)`
  yields a function that runs the graph into y.

`compute` runs the graph through `ggml_graph_plan` + `ggml_graph_compute`
with a persistent ggml thread pool and one work buffer, as llama.cpp does,
rather than `ggml_graph_compute_with_ctx`: that one allocates a fresh work
buffer inside the context on every call (the context would have to be sized
for every repetition) and starts and joins a throwaway thread pool per call
(measured here, q4_k 4096x14336, 2 threads, M=1: 10-55% of the persistent
pool's rate).

Needs the `bench` extra (`pip install -e '.[bench]'`: ggml-python, which
builds ggml from source).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator

import numpy as np
from ggml import ggml

#: rows quantized from fresh random data; a taller weight repeats them (the
#: bytes' values do not matter for speed, and quantizing a 1 GB weight row by
#: row from random floats takes minutes)
DISTINCT_ROWS = 4096
QUANTIZE_CHUNK_ROWS = 512

ggml.ggml_cpu_init()  # ggml's fp16 tables; idempotent


def ggml_type(name: str) -> int:
    """ggml's type id for a GGUF encoding name ("q4_k" -> GGML_TYPE_Q4_K)."""
    try:
        return getattr(ggml, f"GGML_TYPE_{name.upper()}")
    except AttributeError:
        raise ValueError(f"ggml has no type {name!r}") from None


def packed_row_bytes(name: str, k: int) -> int:
    """Bytes of one packed row of K values in GGUF type `name`, by ggml's own count."""
    return ggml.ggml_row_size(ggml_type(name), k)


def cpu_features() -> dict[str, bool]:
    """The instruction sets ggml's CPU backend was built for and found."""
    names = ["avx2", "avx512", "avx512_vnni", "avx_vnni", "amx_int8", "llamafile"]
    return {name: bool(getattr(ggml, f"ggml_cpu_has_{name}")()) for name in names}


def _context(data_bytes: int, tensors: int, graph: bool = False) -> ggml.ggml_context_p:
    """A ggml context big enough for `tensors` tensors holding `data_bytes` in all."""
    # Each object is padded to GGML_MEM_ALIGN; 64 bytes a tensor covers it.
    size = data_bytes + tensors * (ggml.ggml_tensor_overhead() + 64)
    if graph:
        size += ggml.ggml_graph_overhead()
    params = ggml.ggml_init_params(mem_size=size, mem_buffer=None, no_alloc=False)
    ctx = ggml.ggml_init(params)
    if not ctx:
        raise MemoryError(f"ggml_init could not allocate {size} bytes")
    return ctx


def _view(tensor, dtype: str, shape: tuple[int, int]) -> np.ndarray:
    """A numpy view of a ggml tensor's data (valid until its context is freed)."""
    count = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = (ctypes.c_uint8 * count).from_address(ggml.ggml_get_data(tensor))
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


class GGMLWeight:
    """A [N, K] weight quantized by ggml into a ggml tensor of GGUF type `name`."""

    def __init__(self, name: str, n: int, k: int, rng: np.random.Generator):
        self.name, self.n, self.k = name, n, k
        self.type = ggml_type(name)
        self.row_bytes = packed_row_bytes(name, k)
        self.ctx = _context(n * self.row_bytes, tensors=1)
        self.tensor = ggml.ggml_new_tensor_2d(self.ctx, self.type, k, n)  # ne0 = K: rows of K
        self.packed = _view(self.tensor, "uint8", (n, self.row_bytes))
        self._quantize(rng)

    def _quantize(self, rng: np.random.Generator) -> None:
        distinct = min(self.n, DISTINCT_ROWS)
        base = ggml.ggml_get_data(self.tensor)
        for row in range(0, distinct, QUANTIZE_CHUNK_ROWS):
            rows = min(QUANTIZE_CHUNK_ROWS, distinct - row)
            src = rng.standard_normal((rows, self.k), dtype=np.float32)
            # ggml_quantize_chunk offsets src by `start` itself: pass 0 with a
            # chunk-sized src and point dst at the chunk's first row.
            written = ggml.ggml_quantize_chunk(
                self.type,
                src.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                base + row * self.row_bytes,
                0,
                rows,
                self.k,
                None,
            )
            if written != rows * self.row_bytes:
                raise RuntimeError(f"ggml_quantize_chunk({self.name}) wrote {written} bytes")
        for row in range(distinct, self.n, distinct):
            rows = min(distinct, self.n - row)
            self.packed[row : row + rows] = self.packed[:rows]

    @property
    def nbytes(self) -> int:
        return self.n * self.row_bytes

    def close(self) -> None:
        if self.ctx:
            self.packed = None
            ggml.ggml_free(self.ctx)
            self.ctx = None


class GGMLMatmul:
    """y [M, N] = x [M, K] @ W.T by ggml_mul_mat; x and y are numpy views, allocated once."""

    def __init__(self, weight: GGMLWeight, m: int):
        n, k = weight.n, weight.k
        self.ctx = _context((m * k + m * n) * 4, tensors=2, graph=True)
        x = ggml.ggml_new_tensor_2d(self.ctx, ggml.GGML_TYPE_F32, k, m)
        # The weight lives in its own context: a graph may use tensors of several.
        y = ggml.ggml_mul_mat(self.ctx, weight.tensor, x)
        self.graph = ggml.ggml_new_graph(self.ctx)
        ggml.ggml_build_forward_expand(self.graph, y)
        self.x = _view(x, "float32", (m, k))
        self.y = _view(y, "float32", (m, n))

    @contextlib.contextmanager
    def compute(self, threads: int) -> Iterator[Callable[[], None]]:
        """A function that runs the graph on `threads` threads of a persistent ggml pool.

        The pool is freed on exit: its idle workers poll for new work for a
        while after each graph, which would take a core from whatever runs next.
        """
        params = ggml.ggml_threadpool_params_default(threads)
        pool = ggml.ggml_threadpool_new(ctypes.byref(params))
        if not pool:
            raise RuntimeError(f"ggml_threadpool_new({threads}) failed")
        try:
            plan = ggml.ggml_graph_plan(self.graph, threads, pool)
            work = np.empty(max(plan.work_size, 1), np.uint8)  # the quantized activations
            plan.work_data = work.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
            plan_ref = ctypes.byref(plan)

            def run() -> None:
                status = ggml.ggml_graph_compute(self.graph, plan_ref)
                if status != ggml.GGML_STATUS_SUCCESS:
                    raise RuntimeError(f"ggml_graph_compute failed with status {status}")

            yield run
        finally:
            ggml.ggml_threadpool_free(pool)

    def close(self) -> None:
        if self.ctx:
            self.x = self.y = None
            ggml.ggml_free(self.ctx)
            self.ctx = None
