"""One-command GPU check: the GPU tests, correctness against the CPU, bandwidth.

    python benchmarks/gpu_check.py --out results/   # everything (a few minutes)
    python benchmarks/gpu_check.py --no-tests       # correctness + benchmark only
    python benchmarks/gpu_check.py --dry-run        # small sizes on the CPU: checks this script

Three parts, each written to the results folder (`gpu_check.json`, a text
table `gpu_check.txt`, and the pytest log `gpu_tests.log`):

1. The GPU test suite (`pytest -m gpu tests/gpu`).
2. Correctness on a 256-row weight of every encoding: dequantize compared bit
   for bit with the CPU, qmatmul at M = 1, 16 and 256 compared with the CPU's
   exact float path within the float32 accumulation bound (2 K eps sum |x||w|).
3. Speed on weights of at least `--min-mb` (default 512) MB, entirely on the
   device (weights, x and outputs resident): M = 1 qmatmul and dequantize for
   every encoding, timed per launch with CUDA events (median of `--repeats`),
   reported as bytes moved per second over the device-to-device copy bandwidth
   measured in the same run (cuMemcpyDtoD, bytes read + written). qmatmul moves
   the packed weight (x and y are negligible); dequantize moves the packed
   weight plus its float32 output. Targets: M = 1 qmatmul >= 50% of copy
   bandwidth for Q4_K and 4-bit GPTQ, dequantize >= 70%. Q4_K and GPTQ 4-bit
   also get M = 16 and M = 256 timings (weights per second).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantir.compiler.encodings import layout_for
from quantir.dialects.encoding import QuantizationEncoding, gptq_config_text
from quantir.runtime import cuda
from quantir.runtime.jit import compile_source, load_program

K = 4096
CHECK_ROWS = 256
CHECK_M = (1, 16, 256)
PREFILL_M = (16, 256)
PREFILL_CASES = ("q4_k", "gptq4-g128")
TARGETS = {"q4_k": 0.5, "gptq4-g128": 0.5}  # M = 1 qmatmul, fraction of copy bandwidth
DEQUANTIZE_TARGET = 0.7


@dataclass
class Case:
    name: str
    attr: str  # the op's encoding (and config) text
    packed: list[np.ndarray]
    types: list[str]  # tensor types of the packed operands (N dynamic)
    rows: int  # N
    n_axis: list[int | None]  # per packed array: which axis is N (None: not sliced)
    n_scale: list[int]  # per packed array: columns per 32 rows along that axis / 32

    def head(self, rows: int) -> list[np.ndarray]:
        """The packed tensors of the first `rows` rows of the weight."""
        out = []
        for a, axis, scale in zip(self.packed, self.n_axis, self.n_scale):
            if axis is None:
                out.append(a)
            else:
                idx = [slice(None)] * a.ndim
                idx[axis] = slice(0, rows * scale // 32)
                out.append(np.ascontiguousarray(a[tuple(idx)]))
        return out

    @property
    def weight_bytes(self) -> int:
        return sum(a.nbytes for a in self.packed if a.ndim > 1)


def gguf_case(enc: QuantizationEncoding, rows: int, rng) -> Case:
    row_bytes = K // enc.elements_per_block * enc.block_size
    w = rng.integers(0, 256, size=(rows, row_bytes), dtype=np.uint8)
    blocks = w.reshape(rows, -1, enc.block_size)
    for off in layout_for(enc).fp16_fields.values():
        d = rng.uniform(-0.05, 0.05, size=blocks.shape[:2]).astype(np.float16)
        blocks[:, :, off : off + 2] = d.view(np.uint8).reshape(*blocks.shape[:2], 2)
    return Case(
        enc.name,
        f"#quant.encoding<{enc.name}>",
        [w],
        [f"tensor<?x{row_bytes}xui8>"],
        rows,
        [0],
        [32],
    )


def gptq_case(bits: int, rows: int, rng) -> Case:
    from quantir.runtime.gptq import quantize_gptq_rtn

    base = quantize_gptq_rtn(rng.standard_normal((CHECK_ROWS, K)).astype(np.float32), bits, 128)
    reps = rows // CHECK_ROWS
    tensors = [
        np.tile(base.qweight, (1, reps)),
        np.tile(base.qzeros, (1, reps)),
        np.tile(base.scales, (1, reps)),
        base.g_idx,
    ]
    g = K // 128
    types = [
        f"tensor<{K * bits // 32}x?xi32>",
        f"tensor<{g}x?xi32>",
        f"tensor<{g}x?xf16>",
        f"tensor<{K}xi32>",
    ]
    attr = "#quant.encoding<gptq> config #quant.gptq" + gptq_config_text(
        bits, 128, False, True, "gptq"
    )
    return Case(f"gptq{bits}-g128", attr, tensors, types, rows, [1, 1, 1, None], [32, bits, 32, 32])


def qmatmul_graph(case: Case, m: int) -> str:
    params = ", ".join(f"%p{i}: {t}" for i, t in enumerate(case.types))
    uses = ", ".join(f"%p{i}" for i in range(len(case.types)))
    types = ", ".join(case.types)
    return f"""func.func @mv(%x: tensor<{m}x{K}xf32>, {params}) -> tensor<{m}x?xf32> {{
  %y = quant.qmatmul {case.attr} %x, {uses} : (tensor<{m}x{K}xf32>, {types}) -> tensor<{m}x?xf32>
  func.return %y : tensor<{m}x?xf32>
}}"""


def dequantize_graph(case: Case) -> str:
    params = ", ".join(f"%p{i}: {t}" for i, t in enumerate(case.types))
    uses = ", ".join(f"%p{i}" for i in range(len(case.types)))
    types = ", ".join(case.types)
    return f"""func.func @deq({params}) -> tensor<?x{K}xf32> {{
  %y = quant.dequantize {case.attr} {uses} : ({types}) -> tensor<?x{K}xf32>
  func.return %y : tensor<?x{K}xf32>
}}"""


def rows_for(bytes_per_row: float, min_bytes: int) -> int:
    rows = int(-(-min_bytes // bytes_per_row))
    return -(-rows // CHECK_ROWS) * CHECK_ROWS


def all_cases(min_bytes: int, wanted: set[str], rng) -> list[Case]:
    cases = []
    for enc in QuantizationEncoding:
        if enc.is_gguf and (not wanted or enc.name in wanted):
            row_bytes = K // enc.elements_per_block * enc.block_size
            cases.append(gguf_case(enc, rows_for(row_bytes, min_bytes), rng))
    for bits in (4, 8, 3, 2):
        if not wanted or f"gptq{bits}" in wanted:
            cases.append(gptq_case(bits, rows_for(K * bits / 8, min_bytes), rng))
    return cases


def cpu_program(source: str, exact: bool = True):
    pipeline = "quantir-cpu-exact" if exact else None
    return load_program(compile_source(source, "cpu", pipeline=pipeline), threads=4)


def accumulation_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float32).eps
    return 2 * x.shape[-1] * eps * (np.abs(x).astype(np.float64) @ np.abs(w).T.astype(np.float64))


class GpuTimer:
    """Median time of a callable on the device, bracketed by CUDA events per call."""

    def __init__(self, gpu: cuda.GpuDevice):
        self.gpu = gpu

    def _event(self) -> ctypes.c_void_p:
        ev = ctypes.c_void_p()
        self.gpu.driver.call("cuEventCreate", ctypes.byref(ev), 0)
        return ev

    def time(self, fn, repeats: int) -> dict:
        gpu = self.gpu
        gpu.activate()
        fn()  # warm-up: module load, first launch
        gpu.synchronize()
        events = [(self._event(), self._event()) for _ in range(repeats)]
        t = time.perf_counter()
        for start, end in events:
            gpu.driver.call("cuEventRecord", start, None)
            fn()
            gpu.driver.call("cuEventRecord", end, None)
        issue = time.perf_counter() - t
        gpu.synchronize()
        wall = time.perf_counter() - t
        times = []
        for start, end in events:
            ms = ctypes.c_float()
            gpu.driver.call("cuEventElapsedTime", ctypes.byref(ms), start, end)
            times.append(ms.value / 1e3)
            gpu.driver.call("cuEventDestroy_v2", start)
            gpu.driver.call("cuEventDestroy_v2", end)
        return {
            "median_s": float(np.median(times)),
            "min_s": float(np.min(times)),
            "wall_per_call_s": wall / repeats,
            "issue_per_call_s": issue / repeats,
        }


class Check:
    """Correctness and speed of one case on the GPU (or the CPU for --dry-run)."""

    def __init__(self, gpu: cuda.GpuDevice | None, repeats: int):
        self.gpu = gpu
        self.repeats = repeats

    # -- correctness -----------------------------------------------------------

    def correctness(self, case: Case, rng) -> dict:
        head = case.head(CHECK_ROWS)
        deq = dequantize_graph(case)
        (w_cpu,) = cpu_program(deq)(head)
        w_dev = self.run_on_device(deq, head, (CHECK_ROWS, K))
        result = {
            "dequantize_bit_identical": bool(
                np.array_equal(w_dev.view(np.uint32), w_cpu.view(np.uint32))
            ),
            "qmatmul": {},
        }
        for m in CHECK_M:
            x = rng.standard_normal((m, K)).astype(np.float32)
            source = qmatmul_graph(case, m)
            (y_cpu,) = cpu_program(source)([x, *head])
            y_dev = self.run_on_device(source, [x, *head], (m, CHECK_ROWS))
            bound = 2 * accumulation_bound(x, w_cpu) + 1e-30
            err = np.abs(y_dev.astype(np.float64) - y_cpu)
            result["qmatmul"][m] = {
                "within_bound": bool(np.all(err <= bound)),
                "max_err_over_bound": float(np.max(err / bound)),
            }
        result["ok"] = result["dequantize_bit_identical"] and all(
            r["within_bound"] for r in result["qmatmul"].values()
        )
        return result

    def run_on_device(self, source: str, inputs: list[np.ndarray], out_shape) -> np.ndarray:
        if self.gpu is None:  # dry run: the GPU's scalar lowering, run on the CPU
            program = load_program(compile_source(source, "cpu", pipeline="quantir-cpu-scalar"))
            (out,) = program(inputs)
            return out
        compiled = compile_source(source, "gpu", gpu_arch=self.gpu.arch)
        program = load_program(compiled, device=self.gpu.bind(compiled.ptx))
        bufs = [self.gpu.upload(a) for a in inputs]
        out = self.gpu.alloc(out_shape, "float32")
        program(bufs, outputs=[out])
        self.gpu.synchronize()
        host = out.to_numpy()
        for b in (*bufs, out):
            b.free()
        return host

    # -- speed -----------------------------------------------------------------

    def speed(self, source: str, inputs: list[np.ndarray], out_shape) -> dict:
        if self.gpu is None:
            program = load_program(compile_source(source, "cpu"), threads=1)
            program(inputs)
            t = time.perf_counter()
            program(inputs)
            s = time.perf_counter() - t
            return {"median_s": s, "min_s": s, "wall_per_call_s": s, "issue_per_call_s": s}
        gpu = self.gpu
        compiled = compile_source(source, "gpu", gpu_arch=gpu.arch)
        program = load_program(compiled, device=gpu.bind(compiled.ptx))
        bufs = [gpu.upload(a) for a in inputs]
        out = gpu.alloc(out_shape, "float32")
        try:
            return GpuTimer(gpu).time(lambda: program(bufs, outputs=[out]), self.repeats)
        finally:
            for b in (*bufs, out):
                b.free()


def copy_bandwidth(gpu: cuda.GpuDevice | None, nbytes: int = 1 << 30, repeats: int = 10) -> float:
    """Bytes read + written per second by a device-to-device copy (numpy copy for --dry-run)."""
    if gpu is None:
        src = np.ones(nbytes // 4, np.float32)
        dst = np.empty_like(src)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            np.copyto(dst, src)
            best = min(best, time.perf_counter() - t)
        return 2 * src.nbytes / best
    src, dst = gpu.alloc((nbytes,), "uint8"), gpu.alloc((nbytes,), "uint8")

    def copy() -> None:
        gpu.driver.call(
            "cuMemcpyDtoD_v2",
            ctypes.c_uint64(dst.ptr),
            ctypes.c_uint64(src.ptr),
            ctypes.c_size_t(nbytes),
        )

    timing = GpuTimer(gpu).time(copy, repeats)
    src.free()
    dst.free()
    return 2 * nbytes / timing["min_s"]


def run_gpu_tests(out_dir: Path | None) -> int:
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", str(root / "tests" / "gpu")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    print(log[-4000:], flush=True)
    if out_dir is not None:
        (out_dir / "gpu_tests.log").write_text(log)
    print(f"GPU tests: exit status {proc.returncode}", flush=True)
    return proc.returncode


def device_info(gpu: cuda.GpuDevice | None) -> dict:
    info = {"host": platform.node(), "python": platform.python_version()}
    if gpu is None:
        return {**info, "device": "CPU dry run"}
    name = ctypes.create_string_buffer(256)
    gpu.driver.call("cuDeviceGetName", name, 256, gpu.handle)
    version = ctypes.c_int()
    gpu.driver.call("cuDriverGetVersion", ctypes.byref(version))
    return {**info, "device": name.value.decode(), "arch": gpu.arch, "cuda_driver": version.value}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="quantir GPU tests, correctness and bandwidth")
    parser.add_argument("--no-tests", action="store_true", help="skip the GPU test suite")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-mb", type=int, default=512, help="packed weight size for timings")
    parser.add_argument("--encodings", default="", help="comma-separated subset (q4_k,gptq4,...)")
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json/.txt and the test log")
    parser.add_argument("--commit", default="", help="recorded in the results")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="small weights on the CPU, to check this script without a GPU",
    )
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    gpu = None
    results: dict = {"commit": args.commit}
    failures = 0
    if not args.dry_run:
        if not cuda.available():
            print(
                "gpu_check: no GPU: the CUDA driver or a device is not available", file=sys.stderr
            )
            return 2
        if not args.no_tests:
            results["gpu_tests_exit_status"] = rc = run_gpu_tests(args.out)
            failures += int(rc != 0)
        gpu = cuda.GpuDevice.get(0)
    results["machine"] = device_info(gpu)
    bw = copy_bandwidth(gpu, nbytes=(1 << 30) if gpu else (64 << 20))
    results["copy_bandwidth_gbs"] = bw / 1e9
    lines = [
        f"{results['machine']['device']}: copy bandwidth {bw / 1e9:.0f} GB/s (read + write)",
        f"{'encoding':<12} {'MB':>6} {'M=1 GB/s':>9} {'of copy':>8} {'deq GB/s':>9} "
        f"{'of copy':>8} {'deq=cpu':>8} {'qmm<=bound':>11}",
    ]
    print("\n".join(lines), flush=True)
    wanted = {s.strip().lower() for s in args.encodings.split(",") if s.strip()}
    min_bytes = (args.min_mb << 20) if gpu else 1 << 20
    rng = np.random.default_rng(0)
    check = Check(gpu, args.repeats)
    results["cases"] = {}
    for case in all_cases(min_bytes, wanted, rng):
        r: dict = {"weight_mb": case.weight_bytes / 2**20, "rows": case.rows}
        try:
            r["correctness"] = check.correctness(case, rng)
            x = rng.standard_normal((1, K)).astype(np.float32)
            mv = check.speed(qmatmul_graph(case, 1), [x, *case.packed], (1, case.rows))
            r["qmatmul_m1"] = {**mv, "gbs": case.weight_bytes / mv["median_s"] / 1e9}
            deq = check.speed(dequantize_graph(case), case.packed, (case.rows, K))
            moved = case.weight_bytes + case.rows * K * 4
            r["dequantize"] = {**deq, "gbs": moved / deq["median_s"] / 1e9}
            if case.name in PREFILL_CASES:
                for m in PREFILL_M:
                    xm = rng.standard_normal((m, K)).astype(np.float32)
                    t = check.speed(qmatmul_graph(case, m), [xm, *case.packed], (m, case.rows))
                    r[f"qmatmul_m{m}"] = {**t, "gweights_s": case.rows * K / t["median_s"] / 1e9}
        except Exception as exc:  # record and go on: one broken case must not hide the rest
            r["error"] = f"{type(exc).__name__}: {exc}"
            failures += 1
            results["cases"][case.name] = r
            line = f"{case.name:<12} ERROR {r['error'][:300]}"
            lines.append(line)
            print(line, flush=True)
            save(args.out, results, lines)
            continue
        ok = r["correctness"]["ok"]
        frac = r["qmatmul_m1"]["gbs"] * 1e9 / bw
        deq_frac = r["dequantize"]["gbs"] * 1e9 / bw
        r["qmatmul_m1"]["of_copy"], r["dequantize"]["of_copy"] = frac, deq_frac
        target = TARGETS.get(case.name)
        verdict = ""
        if gpu is not None and target is not None:
            verdict = " PASS" if frac >= target else " below target"
        failures += int(not ok)
        qmm = all(v["within_bound"] for v in r["correctness"]["qmatmul"].values())
        line = (
            f"{case.name:<12} {r['weight_mb']:6.0f} {r['qmatmul_m1']['gbs']:9.1f} {frac:8.0%} "
            f"{r['dequantize']['gbs']:9.1f} {deq_frac:8.0%} "
            f"{str(r['correctness']['dequantize_bit_identical']):>8} {str(qmm):>11}{verdict}"
        )
        for m in PREFILL_M:
            if f"qmatmul_m{m}" in r:
                line += f"  M={m}: {r[f'qmatmul_m{m}']['gweights_s']:.0f} G weights/s"
        lines.append(line)
        print(line, flush=True)
        results["cases"][case.name] = r
        save(args.out, results, lines)  # after every case: a run cut short keeps what it measured
    results["failures"] = failures
    save(args.out, results, lines)
    return 1 if failures else 0


def save(out: Path | None, results: dict, lines: list[str]) -> None:
    if out is not None:
        (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
        (out / "gpu_check.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
