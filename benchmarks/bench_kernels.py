"""Throughput of quantir's compiled CPU kernels: dequantize and M=1 qmatmul.

For each encoding and weight shape it times the compiled kernels with one
thread and with every core, and, in the same run, a numpy baseline and the
single-thread memory copy bandwidth of this machine:

* numpy baseline: gguf-py's ``gguf.quants.dequantize`` for GGUF encodings,
  quantir's numpy reference ``dequantize_gptq_reference`` for GPTQ (there is
  no gguf-py GPTQ); for qmatmul, that dequantize followed by ``x @ w.T``
  (numpy), timed together.
* copy bandwidth: bytes read + written per second by ``np.copyto`` of a
  256 MiB float32 array (single-threaded), best of several copies. It is
  re-measured right before every kernel timing, because this machine is
  shared and its bandwidth drifts; each row's ratio uses the measurement
  next to it.

Shapes: the packed weight has N rows (output features) and K columns of
logical values (input features); ``y = x @ W.T`` with x [1, K] and W [N, K].
  4096x4096            N=4096,  K=4096
  N=14336,K=4096       N=14336, K=4096   (a Llama-3-8B MLP gate/up projection)
  N=4096,K=14336       N=4096,  K=14336  (its down projection, the transposed case)
Both large ones are larger than a typical last-level cache; to measure them
from memory rather than from cache, the caches are flushed (a copy of twice
the last-level cache size) before every timed call (``--no-flush`` keeps
them warm).

Columns: ms = best time of one call; Gel/s = N*K / time; wGB/s = packed weight
bytes / time; oGB/s = float32 output bytes / time (dequantize); copy = the
adjacent copy bandwidth (GB/s); %copy = oGB/s / copy for dequantize and
wGB/s / copy for qmatmul; np_ms = the numpy baseline; x_np = np_ms / ms.
Targets (checked on the two large shapes, threads=1): dequantize float32
output bytes/s >= 50% of copy bandwidth, M=1 qmatmul packed weight bytes/s
>= 25% of it, both >= 10x the numpy baseline.

Compiling happens before any timing: each kernel is compiled once
(``runtime.jit.compile_source``, the same one-op graph the eager API builds),
bound to a thread count with ``load_program``, warmed up and then called
directly on preallocated outputs. Timings are the best of several calls.
Every result is also checked against the baseline (dequantize bit for bit,
qmatmul to 1e-3 relative).

    /work/venv/bin/python benchmarks/bench_kernels.py [--quick]
        [--encodings q4_k,q6_k,gptq4] [--threads N] [--no-flush]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.api import eager_source
from quantir.runtime.buffers import aligned_empty
from quantir.runtime.gptq import GPTQLinear, dequantize_gptq_reference, quantize_gptq_rtn
from quantir.runtime.jit import compile_source, load_program
from quantir.runtime.quantize import quantize

GGUF_NAMES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]
GPTQ_NAMES = {"gptq4": 4, "gptq3": 3, "gptq8": 8}  # group_size 128, no desc_act
GPTQ_GROUP = 128
FULL_SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336)]  # (N, K)
QUICK_SHAPES = [(1024, 1024), (4096, 1024), (1024, 4096)]
QUICK_ENCODINGS = ["q4_0", "q4_k", "q6_k", "gptq4"]
TILE_ROWS = 512  # weights are quantized once per K for this many rows, then tiled
COPY_BYTES = 256 << 20
DEQUANT_TARGET, QMATMUL_TARGET, NUMPY_TARGET = 0.50, 0.25, 10.0


# -- measuring -------------------------------------------------------------------------------


def best_seconds(
    run: Callable[[], object],
    flush: Callable[[], None] | None,
    min_calls: int = 3,
    max_calls: int = 15,
    budget_s: float = 0.4,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best time of one call, after a warm-up call; at least `min_calls` calls.

    `clock` is wall time by default; `time.thread_time` measures the calling
    thread's CPU time instead (for work done in that thread alone: it leaves
    out the time other processes held the core)."""
    run()
    times: list[float] = []
    while len(times) < min_calls or (sum(times) < budget_s and len(times) < max_calls):
        if flush is not None:
            flush()
        start = clock()
        run()
        times.append(clock() - start)
    return min(times)


class CopyMeter:
    """Single-thread copy bandwidth: bytes read + written per second by np.copyto."""

    def __init__(self, nbytes: int = COPY_BYTES):
        self.src = np.ones(nbytes // 4, np.float32)
        self.dst = np.zeros_like(self.src)  # written once here: no page faults later
        np.copyto(self.dst, self.src)

    def measure(self, copies: int = 4) -> float:
        best = min(self._one() for _ in range(copies))
        return 2 * self.src.nbytes / best

    def _one(self) -> float:
        start = time.perf_counter()
        np.copyto(self.dst, self.src)
        return time.perf_counter() - start


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (sysfs), or 64 MiB when unknown."""
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            best = max(best, int(digits) * unit)
    return best or 64 << 20


class CacheFlusher:
    """Evicts the caches by copying a buffer twice the last-level cache size."""

    def __init__(self):
        n = 2 * last_level_cache_bytes() // 4
        self.a = np.ones(n, np.float32)
        self.b = np.zeros_like(self.a)

    def __call__(self) -> None:
        np.copyto(self.b, self.a)


# -- operands and kernels --------------------------------------------------------------------


@dataclass
class Operands:
    """One weight in the layout the kernels take, and its numpy baseline."""

    label: str
    encoding: str
    packed: object  # what the eager API takes: the packed array, or a GPTQLinear
    arrays: list[np.ndarray]  # the packed weight: one array, or the four GPTQ tensors
    numpy_dequantize: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def _tile_rows(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    reps = -(-n // a.shape[axis])
    tiled = np.concatenate([a] * reps, axis=axis)
    return np.ascontiguousarray(tiled[:n] if axis == 0 else tiled[:, :n])


def gguf_operands(name: str, n: int, k: int, rng: np.random.Generator) -> Operands:
    """Quantize normal weights (TILE_ROWS rows, tiled to N) with quantir's quantizer."""
    tile = quantize(name, rng.standard_normal((min(n, TILE_ROWS), k), dtype=np.float32))
    packed = _tile_rows(tile, n, 0)
    qtype = GGMLQuantizationType[name.upper()]
    return Operands(name, name, packed, [packed], lambda: gguf_dequantize(packed, qtype))


def gptq_operands(label: str, bits: int, n: int, k: int, rng: np.random.Generator) -> Operands:
    tile = quantize_gptq_rtn(
        rng.standard_normal((min(n, TILE_ROWS), k)) * 0.02, bits, GPTQ_GROUP, sym=False
    )
    layer = GPTQLinear(
        name=label,
        qweight=_tile_rows(tile.qweight, n, 1),
        qzeros=_tile_rows(tile.qzeros, n * bits // 32, 1),
        scales=_tile_rows(tile.scales, n, 1),
        g_idx=tile.g_idx,
        bias=None,
        config=tile.config,
        checkpoint_format="gptq",
    )
    return Operands(
        label, "gptq", layer, list(layer.tensors()), lambda: dequantize_gptq_reference(layer)
    )


# -- the run ---------------------------------------------------------------------------------


def shape_label(n: int, k: int) -> str:
    return f"{n}x{k}" if n == k else f"N={n},K={k}"


def check_bits(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    if not np.array_equal(ours.view(np.uint32), ref.astype(np.float32).view(np.uint32)):
        raise SystemExit(f"{what}: quantir's dequantize differs from the baseline")


def check_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    scale = float(np.abs(ref).max()) or 1.0
    err = float(np.abs(ours.astype(np.float64) - ref).max()) / scale
    if not err < 1e-3:
        raise SystemExit(f"{what}: qmatmul differs from the baseline (relative error {err:.2e})")


HEADER = (
    f"{'encoding':8} {'shape':15} {'op':10} {'thr':>3} {'ms':>8} {'Gel/s':>7} {'wGB/s':>6} "
    f"{'oGB/s':>6} {'copy':>5} {'%copy':>6} {'np_ms':>8} {'x_np':>6}  target"
)


@dataclass
class Row:
    """One timed kernel, with its adjacent copy bandwidth and numpy baseline."""

    label: str
    n: int
    k: int
    op: str
    threads: int
    weight_bytes: int
    seconds: float
    copy_bw: float
    numpy_seconds: float

    @property
    def fraction_of_copy(self) -> float:
        """dequantize: float32 output bytes/s; qmatmul: packed weight bytes/s; over copy."""
        moved = self.n * self.k * 4 if self.op == "dequantize" else self.weight_bytes
        return moved / self.seconds / self.copy_bw

    @property
    def speedup(self) -> float:
        return self.numpy_seconds / self.seconds

    def verdict(self) -> str:
        """PASS/FAIL against the targets: large shapes, one thread; "-" elsewhere."""
        if self.n * self.k < 4096 * 14336 or self.threads != 1:
            return "-"
        target = DEQUANT_TARGET if self.op == "dequantize" else QMATMUL_TARGET
        missed = [
            name
            for name, bad in (
                ("%copy", self.fraction_of_copy < target),
                ("x_np", self.speedup < NUMPY_TARGET),
            )
            if bad
        ]
        return "PASS" if not missed else f"FAIL ({', '.join(missed)})"

    def line(self) -> str:
        out = "-" if self.op == "qmatmul" else f"{self.n * self.k * 4 / self.seconds / 1e9:.2f}"
        return (
            f"{self.label:8} {shape_label(self.n, self.k):15} {self.op:10} {self.threads:3d} "
            f"{self.seconds * 1e3:8.2f} {self.n * self.k / self.seconds / 1e9:7.2f} "
            f"{self.weight_bytes / self.seconds / 1e9:6.2f} {out:>6} {self.copy_bw / 1e9:5.1f} "
            f"{100 * self.fraction_of_copy:5.1f}% {self.numpy_seconds * 1e3:8.1f} "
            f"{self.speedup:6.1f}  {self.verdict()}"
        )


def run_shape(
    label: str, n: int, k: int, thread_counts, meter: CopyMeter, flush, rng: np.random.Generator
) -> list[Row]:
    """Time both kernels at every thread count for one weight, printing each row."""
    if label in GPTQ_NAMES:
        w = gptq_operands(label, GPTQ_NAMES[label], n, k, rng)
    else:
        w = gguf_operands(label, n, k, rng)
    x = rng.standard_normal((1, k), dtype=np.float32)
    # Outputs allocated as the runtime allocates its own (64-byte aligned, so
    # streaming stores write whole vectors); see README for numpy's 16-byte one.
    outputs = {
        "dequantize": aligned_empty((n, k), "float32"),
        "qmatmul": aligned_empty((1, n), "float32"),
    }
    inputs = {"dequantize": w.arrays, "qmatmul": [x, *w.arrays]}
    # The one-op graphs the eager API compiles for these operands.
    compiled = {
        op: compile_source(eager_source(op, w.encoding, w.packed)[0], "cpu") for op in outputs
    }

    # Baselines: numpy dequantize is single-threaded; BLAS may thread x @ w.T.
    numpy_seconds = {
        "dequantize": best_seconds(w.numpy_dequantize, None, min_calls=2, max_calls=2),
        "qmatmul": best_seconds(lambda: x @ w.numpy_dequantize().T, None, 2, 2),
    }
    ref_w = w.numpy_dequantize()
    ref_y = x.astype(np.float64) @ ref_w.astype(np.float64).T

    rows = []
    for op in outputs:
        for threads in thread_counts:
            program = load_program(compiled[op], op, threads=threads)
            call = functools.partial(program, inputs[op], outputs=[outputs[op]])
            copy_bw = meter.measure()  # next to the kernel: the machine is shared
            seconds = best_seconds(call, flush)
            what = f"{label} {shape_label(n, k)} {op} threads={threads}"
            if op == "dequantize":
                check_bits(outputs[op], ref_w, what)
            else:
                check_close(outputs[op], ref_y, what)
            row = Row(label, n, k, op, threads, w.nbytes, seconds, copy_bw, numpy_seconds[op])
            print(row.line(), flush=True)
            rows.append(row)
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small shapes {QUICK_SHAPES} and encodings {QUICK_ENCODINGS}",
    )
    parser.add_argument("--encodings", help="comma-separated: q4_0 ... q6_k, gptq4, gptq3, gptq8")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="the multi-threaded count (default: every core)",
    )
    parser.add_argument(
        "--no-flush", action="store_true", help="do not evict the caches before each timed call"
    )
    args = parser.parse_args()

    known = GGUF_NAMES + list(GPTQ_NAMES)
    if args.encodings:
        labels = [s.strip().lower() for s in args.encodings.split(",") if s.strip()]
        unknown = [s for s in labels if s not in known]
        if unknown:
            parser.error(f"unknown encoding(s) {unknown}; choose from {known}")
    else:
        labels = QUICK_ENCODINGS if args.quick else known
    for label in labels:
        if label not in GPTQ_NAMES:
            QuantizationEncoding.parse(label)  # a clear error for a typo
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    thread_counts = sorted({1, args.threads})

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; numpy {np.__version__}")
    flush = None if args.no_flush else CacheFlusher()
    print(
        f"cache flush before each timed call: "
        f"{'off' if flush is None else f'{flush.a.nbytes >> 20} MiB copy'}"
    )
    meter = CopyMeter()
    print(
        f"copy bandwidth (np.copyto of {COPY_BYTES >> 20} MiB, read + write): "
        f"{meter.measure() / 1e9:.1f} GB/s at start"
    )
    print(HEADER, flush=True)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    rows: list[Row] = []
    for label in labels:
        for n, k in shapes:
            rows += run_shape(label, n, k, thread_counts, meter, flush, rng)
    checked = [r for r in rows if r.verdict() != "-"]
    failed = [f"{r.label} {shape_label(r.n, r.k)} {r.op}" for r in checked if r.verdict() != "PASS"]
    print(
        f"total {time.perf_counter() - start:.0f} s; targets: {len(checked) - len(failed)} "
        f"of {len(checked)} rows pass" + (f"; failing: {', '.join(failed)}" if failed else "")
    )


if __name__ == "__main__":
    main()
