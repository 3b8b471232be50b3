"""quantir's qmatmul against ggml's CPU mul_mat on the same weights, in one process.

ggml's `mul_mat` is the path llama.cpp runs on the CPU (activations quantized
to int8 blocks, integer dot products, its own thread pool); it is the anchor
quantir's CPU kernels are measured against. For every GGUF encoding that both
have, every M (rows of x), thread count and shape, this script times:

* ggml: `ggml_mul_mat` through ggml-python (benchmarks/ggml_anchor.py) on a
  weight quantized from random normal floats by ggml's own quantizer
  (`ggml_quantize_chunk`);
* quantir: `quantir.runtime.api.qmatmul(encoding, x, packed, out=y,
  threads=t)` on the identical packed bytes (a uint8 [N, row_bytes] view of
  ggml's tensor) and the identical x.

Shapes. W is [N, K]: N output rows (output features), K input features (the
length of each dot product); y [M, N] = x [M, K] @ W.T.
  cache  N=4096, K=14336 (a Llama-3-8B MLP down projection; 33 MB as q4_k),
         resident in the last-level cache of our machines (300+ MB);
  large  K=14336 and N the smallest multiple of 512 rows whose packed weight
         is at least 1 GiB in that encoding (q4_0: N=133632; q2_k: N=228352),
         streamed from memory. The first 4096 rows are distinct; the rest
         repeat them (the values do not matter for speed).

Throughput: G/s = N*K*M / seconds / 1e9, multiply-adds per second, i.e.
weights x rows of x per second (at M=1, weights per second). ratio =
quantir G/s / ggml G/s: above 1, quantir is faster. Targets (issue 8): M=1
ratio >= 1.0, M in {64, 512} >= 2.0 (M=16 has none).

Correctness, every row: err = ||y_quantir - y_ggml|| / ||y_ggml|| (Frobenius
norms over all of y); q_ex and g_ex = each side against float64 x @ W.T on the
first 256 rows of W (dequantized by gguf-py). ggml quantizes x to 8-bit blocks,
so g_ex is about 1e-3..1e-2 and err follows it; quantir's float path is near
1e-7. A row whose err or q_ex exceeds 5e-2 is WRONG: its times are printed but
the run ends with exit status 1, so a broken kernel cannot post a fast time.

GPTQ: 4-bit, group size 128, random weights packed by quantir's RTN
quantizer (ggml has no GPTQ, so quantir only), M=1, next to quantir's Q4_0 on
the same shape: ratio = gptq4 G/s / q4_0 G/s (target 0.9).

Timing: each side is warmed up, then called until --repeat calls or --budget
seconds have passed (at least 2 calls); the best call counts. ggml and quantir
alternate in blocks, in up to --rounds rounds (a further round only while the
case has taken under 2 x --budget), because ggml's pool can stall for whole
time slices on a loaded machine. ggml's thread pool lives for one block
(created, warmed, freed) so that its idle workers do not take a core from
quantir. Both sides write into outputs allocated once. Caches are not
flushed: the cache shape is meant to be resident, the large one cannot be.
With --clock cpu, one-thread rows count the calling thread's CPU time (both
ggml and quantir run a one-thread call in the calling thread), which leaves
out the time slices other processes took: the way to read kernels on a
loaded machine. Rows with more threads always use wall time.

    pip install -e '.[bench]'
    python benchmarks/bench_ggml.py --quick
    python benchmarks/bench_ggml.py                      # every encoding, cache shape
    python benchmarks/bench_ggml.py --encodings q4_k,q4_0 --m 1 --threads 1
    python benchmarks/bench_ggml.py --shapes large --m 1 --json large.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# bench_kernels and ggml_anchor sit next to this script (the folder is on sys.path).
from bench_kernels import best_seconds, cpu_model, gptq_operands
from ggml_anchor import GGMLMatmul, GGMLWeight, cpu_features, packed_row_bytes
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from quantir.runtime.api import qmatmul
from quantir.runtime.buffers import aligned_empty
from quantir.runtime.gptq import GPTQLinear, dequantize_gptq_reference

ENCODINGS = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]
GPTQ_LABEL, GPTQ_BITS = "gptq4", 4  # group size 128: bench_kernels.GPTQ_GROUP
M_VALUES = [1, 16, 64, 512]
CACHE_N, K = 4096, 14336
LARGE_BYTES, LARGE_ROW_MULTIPLE = 1 << 30, 512
QUICK = {"encodings": ["q4_0", "q4_k", GPTQ_LABEL], "m": [1, 16], "shapes": "cache"}
REF_ROWS = 256  # rows of W checked against float64
TOLERANCE = 5e-2
TARGETS = {1: 1.0, 64: 2.0, 512: 2.0}
GPTQ_TARGET = 0.9


# -- shapes ----------------------------------------------------------------------------------


def weight_rows(encoding: str, shape: str) -> int:
    """N for a shape: 4096 (cache), or the fewest rows (a multiple of 512) filling 1 GiB."""
    if shape == "cache":
        return CACHE_N
    rows = -(-LARGE_BYTES // packed_row_bytes(encoding, K))
    return -(-rows // LARGE_ROW_MULTIPLE) * LARGE_ROW_MULTIPLE


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Settings:
    repeat: int = 10
    budget: float = 1.0
    rounds: int = 2
    clock: str = "wall"

    def clock_for(self, threads: int) -> Callable[[], float]:
        """The clock of a row: with --clock cpu, one-thread rows (both sides run
        in the calling thread) count that thread's CPU time; others wall time."""
        return time.thread_time if self.clock == "cpu" and threads == 1 else time.perf_counter


def timed(call: Callable[[], object], settings: Settings, threads: int = 1) -> float:
    """Best seconds of one call, after a warm-up call."""
    return best_seconds(
        call,
        None,
        min_calls=min(2, settings.repeat),
        max_calls=settings.repeat,
        budget_s=settings.budget,
        clock=settings.clock_for(threads),
    )


def alternate(blocks: list[Callable[[], float]], settings: Settings) -> list[float]:
    """Best time of each block's calls, over rounds of the blocks in turn."""
    best = [math.inf] * len(blocks)
    start = time.perf_counter()
    for round_ in range(settings.rounds):
        if round_ and time.perf_counter() - start > 2 * settings.budget:
            break
        best = [min(b, block()) for b, block in zip(best, blocks)]
    return best


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return float(np.linalg.norm(ours.astype(np.float64) - ref) / (np.linalg.norm(ref) or 1.0))


def rate(n: int, k: int, m: int, seconds: float) -> float:
    """G multiply-adds per second: N*K*M / seconds / 1e9."""
    return n * k * m / seconds / 1e9


def shape_text(n: int, k: int) -> str:
    return f"N={n},K={k}"


# -- GGUF rows: ggml against quantir ---------------------------------------------------------


@dataclass
class MatmulRow:
    encoding: str
    n: int
    k: int
    m: int
    threads: int
    weight_bytes: int
    ggml_s: float
    quantir_s: float
    err: float  # quantir against ggml, all of y
    quantir_exact_err: float  # against float64 on REF_ROWS rows of W
    ggml_exact_err: float

    @property
    def ratio(self) -> float:
        return self.ggml_s / self.quantir_s

    @property
    def wrong(self) -> bool:
        return not (self.err <= TOLERANCE and self.quantir_exact_err <= TOLERANCE)

    def verdict(self) -> str:
        if self.wrong:
            return "WRONG"
        target = TARGETS.get(self.m)
        if target is None:
            return "-"
        return f"{'PASS' if self.ratio >= target else 'FAIL'} (>={target:.1f})"

    HEADER = (
        f"{'enc':5} {'shape':16} {'M':>4} {'thr':>3} {'ggml_ms':>9} {'quantir_ms':>10} "
        f"{'ggml_G/s':>8} {'quantir_G/s':>11} {'ratio':>6} {'err':>8} {'q_ex':>8} {'g_ex':>8}  "
        "target"
    )

    def line(self) -> str:
        return (
            f"{self.encoding:5} {shape_text(self.n, self.k):16} {self.m:4d} {self.threads:3d} "
            f"{self.ggml_s * 1e3:9.2f} {self.quantir_s * 1e3:10.2f} "
            f"{rate(self.n, self.k, self.m, self.ggml_s):8.2f} "
            f"{rate(self.n, self.k, self.m, self.quantir_s):11.2f} {self.ratio:6.2f} "
            f"{self.err:8.1e} {self.quantir_exact_err:8.1e} {self.ggml_exact_err:8.1e}  "
            f"{self.verdict()}"
        )

    def record(self) -> dict:
        return {
            **asdict(self),
            "ggml_gmac_per_s": rate(self.n, self.k, self.m, self.ggml_s),
            "quantir_gmac_per_s": rate(self.n, self.k, self.m, self.quantir_s),
            "ratio": self.ratio,
            "verdict": self.verdict(),
        }


def run_encoding(
    encoding: str,
    shape: str,
    ms: list[int],
    thread_counts: list[int],
    settings: Settings,
    rng: np.random.Generator,
    n: int | None = None,
    k: int = K,
) -> list[MatmulRow]:
    """Every (M, threads) row of one encoding on one shape; `n` overrides the shape's N."""
    if n is None:
        n = weight_rows(encoding, shape)
    weight = GGMLWeight(encoding, n, k, rng)
    rows = []
    try:
        ref_w = gguf_dequantize(
            weight.packed[:REF_ROWS], GGMLQuantizationType[encoding.upper()]
        ).astype(np.float64)
        for m in ms:
            matmul = GGMLMatmul(weight, m)
            try:
                matmul.x[:] = rng.standard_normal((m, k), dtype=np.float32)
                y = aligned_empty((m, n), "float32")
                ref_y = matmul.x.astype(np.float64) @ ref_w.T
                for threads in thread_counts:
                    rows.append(time_pair(encoding, weight, matmul, y, ref_y, threads, settings))
                    print(rows[-1].line(), flush=True)
            finally:
                matmul.close()
    finally:
        weight.close()
    return rows


def time_pair(
    encoding: str,
    weight: GGMLWeight,
    matmul: GGMLMatmul,
    y: np.ndarray,
    ref_y: np.ndarray,
    threads: int,
    settings: Settings,
) -> MatmulRow:
    def ggml_block() -> float:
        with matmul.compute(threads) as run:
            return timed(run, settings, threads)

    quantir_call = functools.partial(
        qmatmul, encoding, matmul.x, weight.packed, out=y, threads=threads
    )
    quantir_block = functools.partial(timed, quantir_call, settings, threads)
    ggml_s, quantir_s = alternate([ggml_block, quantir_block], settings)
    rows = ref_y.shape[1]
    return MatmulRow(
        encoding=encoding,
        n=weight.n,
        k=weight.k,
        m=y.shape[0],
        threads=threads,
        weight_bytes=weight.nbytes,
        ggml_s=ggml_s,
        quantir_s=quantir_s,
        err=relative_error(y, matmul.y),
        quantir_exact_err=relative_error(y[:, :rows], ref_y),
        ggml_exact_err=relative_error(matmul.y[:, :rows], ref_y),
    )


def stalled_rows(rows: list[MatmulRow]) -> list[str]:
    """Multi-thread rows where ggml was slower than on one thread: a loaded machine.

    ggml's workers wait for each other by spinning; when other processes hold
    the cores, a step can wait for whole time slices. Such a row's ratio says
    nothing about the kernels.
    """
    one = {(r.encoding, r.n, r.m): r.ggml_s for r in rows if r.threads == 1}
    return [
        f"{r.encoding} {shape_text(r.n, r.k)} M={r.m} threads={r.threads}"
        for r in rows
        if r.threads > 1 and r.ggml_s > one.get((r.encoding, r.n, r.m), math.inf)
    ]


# -- GPTQ rows: quantir's GPTQ 4-bit against quantir's Q4_0 ----------------------------------


@dataclass
class GPTQRow:
    n: int
    k: int
    threads: int
    gptq_bytes: int
    q4_0_bytes: int
    gptq_s: float
    q4_0_s: float
    gptq_exact_err: float
    q4_0_exact_err: float

    @property
    def ratio(self) -> float:
        return self.q4_0_s / self.gptq_s

    @property
    def wrong(self) -> bool:
        return not (self.gptq_exact_err <= TOLERANCE and self.q4_0_exact_err <= TOLERANCE)

    def verdict(self) -> str:
        if self.wrong:
            return "WRONG"
        return f"{'PASS' if self.ratio >= GPTQ_TARGET else 'FAIL'} (>={GPTQ_TARGET})"

    HEADER = (
        f"{'shape':16} {'thr':>3} {'gptq4_ms':>9} {'q4_0_ms':>9} {'gptq4_G/s':>9} "
        f"{'q4_0_G/s':>8} {'ratio':>6} {'gptq_ex':>8} {'q4_0_ex':>8}  target"
    )

    def line(self) -> str:
        return (
            f"{shape_text(self.n, self.k):16} {self.threads:3d} {self.gptq_s * 1e3:9.2f} "
            f"{self.q4_0_s * 1e3:9.2f} {rate(self.n, self.k, 1, self.gptq_s):9.2f} "
            f"{rate(self.n, self.k, 1, self.q4_0_s):8.2f} {self.ratio:6.2f} "
            f"{self.gptq_exact_err:8.1e} {self.q4_0_exact_err:8.1e}  {self.verdict()}"
        )

    def record(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "verdict": self.verdict()}


def first_rows(layer: GPTQLinear, rows: int) -> GPTQLinear:
    """The layer's first `rows` output features, as a layer of its own."""
    per_word = 32 // layer.config.bits
    return GPTQLinear(
        name=layer.name,
        qweight=np.ascontiguousarray(layer.qweight[:, :rows]),
        qzeros=np.ascontiguousarray(layer.qzeros[:, : rows // per_word]),
        scales=np.ascontiguousarray(layer.scales[:, :rows]),
        g_idx=layer.g_idx,
        bias=None,
        config=layer.config,
        checkpoint_format=layer.checkpoint_format,
    )


def run_gptq(
    shape: str,
    thread_counts: list[int],
    settings: Settings,
    rng: np.random.Generator,
    n: int | None = None,
    k: int = K,
) -> list[GPTQRow]:
    """GPTQ 4-bit g128 against Q4_0, both quantir, M=1, on Q4_0's N for the shape."""
    if n is None:
        n = weight_rows("q4_0", shape)
    q4_0 = GGMLWeight("q4_0", n, k, rng)
    gptq = gptq_operands(GPTQ_LABEL, GPTQ_BITS, n, k, rng).packed
    rows = []
    try:
        x = rng.standard_normal((1, k), dtype=np.float32)
        x64 = x.astype(np.float64)
        ref_q4_0 = x64 @ gguf_dequantize(q4_0.packed[:REF_ROWS], GGMLQuantizationType.Q4_0).T
        ref_gptq = x64 @ dequantize_gptq_reference(first_rows(gptq, REF_ROWS)).T
        y_gptq, y_q4_0 = aligned_empty((1, n), "float32"), aligned_empty((1, n), "float32")
        for threads in thread_counts:
            gptq_call = functools.partial(qmatmul, "gptq", x, gptq, out=y_gptq, threads=threads)
            q4_0_call = functools.partial(
                qmatmul, "q4_0", x, q4_0.packed, out=y_q4_0, threads=threads
            )
            blocks = [
                functools.partial(timed, call, settings, threads) for call in (gptq_call, q4_0_call)
            ]
            gptq_s, q4_0_s = alternate(blocks, settings)
            rows.append(
                GPTQRow(
                    n=n,
                    k=k,
                    threads=threads,
                    gptq_bytes=sum(a.nbytes for a in gptq.tensors()),
                    q4_0_bytes=q4_0.nbytes,
                    gptq_s=gptq_s,
                    q4_0_s=q4_0_s,
                    gptq_exact_err=relative_error(y_gptq[:, :REF_ROWS], ref_gptq),
                    q4_0_exact_err=relative_error(y_q4_0[:, :REF_ROWS], ref_q4_0),
                )
            )
            print(rows[-1].line(), flush=True)
    finally:
        q4_0.close()
    return rows


# -- the run ---------------------------------------------------------------------------------


def machine_info() -> dict:
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (tracked files modified)"
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "ggml_cpu_features": cpu_features(),
        "ggml_python": importlib.metadata.version("ggml-python"),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "quantir_commit": commit,
        "load_average_at_start": os.getloadavg(),
    }


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what}: comma-separated integers, got {text!r}"
        ) from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{what}: positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    known = ENCODINGS + [GPTQ_LABEL]
    parser.add_argument(
        "--encodings",
        help=f"comma-separated, from {','.join(known)} (default: all; "
        f"{GPTQ_LABEL} is the GPTQ-vs-Q4_0 comparison)",
    )
    parser.add_argument("--m", help="comma-separated rows of x (default: 1,16,64,512)")
    parser.add_argument(
        "--threads", help=f"comma-separated thread counts (default: 1,{os.cpu_count()})"
    )
    parser.add_argument(
        "--shapes",
        choices=["cache", "large", "all"],
        help="cache: N=4096,K=14336; large: >= 1 GiB of packed weight; all: both (default: cache)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {','.join(QUICK['encodings'])}, M={QUICK['m']}, cache shape "
        "(explicit flags still win)",
    )
    parser.add_argument("--repeat", type=int, default=10, help="timed calls per block (default 10)")
    parser.add_argument(
        "--budget", type=float, default=1.0, help="seconds per block before stopping (default 1)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="ggml/quantir rounds (default 2)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: time one-thread rows by the calling thread's CPU time, which leaves "
        "out time slices other processes took (for loaded machines; default wall)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows and machine to this file")
    args = parser.parse_args(argv)

    quick = QUICK if args.quick else {}
    if args.encodings:
        args.encodings = [s.strip().lower() for s in args.encodings.split(",") if s.strip()]
        unknown = [s for s in args.encodings if s not in known]
        if unknown:
            parser.error(f"unknown encoding(s) {unknown}; choose from {known}")
    else:
        args.encodings = quick.get("encodings", known)
    try:
        args.m = parse_ints(args.m, "--m") if args.m else quick.get("m", M_VALUES)
        args.threads = (
            parse_ints(args.threads, "--threads")
            if args.threads
            else sorted({1, os.cpu_count() or 1})
        )
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.shapes = args.shapes or quick.get("shapes", "cache")
    if args.repeat < 1 or args.rounds < 1 or args.budget <= 0:
        parser.error("--repeat and --rounds must be at least 1, --budget positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        repeat=args.repeat, budget=args.budget, rounds=args.rounds, clock=args.clock
    )
    shapes = ["cache", "large"] if args.shapes == "all" else [args.shapes]
    gguf = [e for e in args.encodings if e != GPTQ_LABEL]

    machine = machine_info()
    features = ", ".join(f for f, on in machine["ggml_cpu_features"].items() if on) or "none"
    print(f"CPU: {machine['cpu']}, {machine['logical_cores']} logical cores")
    print(
        f"ggml-python {machine['ggml_python']} (ggml CPU features: {features}); "
        f"numpy {machine['numpy']}; Python {machine['python']}"
    )
    print(
        f"quantir commit {machine['quantir_commit']}; load average at start "
        + " ".join(f"{v:.2f}" for v in machine["load_average_at_start"])
    )
    print(
        "G/s = N*K*M / time (multiply-adds per second); ratio = quantir / ggml; "
        f"best of up to {settings.repeat} calls x {settings.rounds} rounds"
    )

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    rows: list[MatmulRow] = []
    gptq_rows: list[GPTQRow] = []
    for shape in shapes:
        if gguf:
            print(f"\n{shape} shape, ggml mul_mat vs quantir qmatmul", flush=True)
            print(MatmulRow.HEADER)
            for encoding in gguf:
                rows += run_encoding(encoding, shape, args.m, args.threads, settings, rng)
        if GPTQ_LABEL in args.encodings:
            print(f"\n{shape} shape, quantir GPTQ 4-bit g128 vs quantir Q4_0, M=1", flush=True)
            print(GPTQRow.HEADER)
            gptq_rows += run_gptq(shape, args.threads, settings, rng)

    wrong = [r for r in [*rows, *gptq_rows] if r.wrong]
    print(
        f"\ntotal {time.perf_counter() - start:.0f} s; "
        + (f"{len(wrong)} row(s) WRONG (results disagree)" if wrong else "all results agree")
        + "; load average at the end "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    stalled = stalled_rows(rows)
    if stalled:
        print(
            "ggml ran slower on more threads than on one (its pool stalled: the machine is "
            "loaded; rerun these): " + ", ".join(stalled)
        )
    if args.json:
        report = {
            "machine": machine,
            "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "throughput_unit": "G multiply-adds/s = N*K*M / seconds / 1e9",
            "clock": args.clock,
            "rows": [r.record() for r in rows],
            "ggml_stalled": stalled_rows(rows),
            "gptq_rows": [r.record() for r in gptq_rows],
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
