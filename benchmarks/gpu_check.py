"""One-command GPU check: the GPU tests, then a bandwidth benchmark.

    python benchmarks/gpu_check.py            # tests + benchmark (a few minutes)
    python benchmarks/gpu_check.py --no-tests # benchmark only
    python benchmarks/gpu_check.py --dry-run  # small sizes on the CPU: checks this script

The benchmark runs M=1 qmatmul and dequantize for every encoding on weights
of at least 256 MB, entirely on the device (weights, x and outputs stay
resident; launches are timed back to back and synchronized once), and
reports packed weight bytes/s as a fraction of the device-to-device copy
bandwidth measured in the same run (bytes read + written per second by
cuMemcpyDtoD of a 1 GiB buffer). Targets: M=1 qmatmul >= 50% of copy
bandwidth for Q4_K and 4-bit GPTQ. Every result is also compared with the
CPU path on the first rows (dequantize bit for bit).
"""

from __future__ import annotations

import argparse
import ctypes
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


def graphs(case: Case) -> tuple[str, str]:
    params = ", ".join(f"%p{i}: {t}" for i, t in enumerate(case.types))
    uses = ", ".join(f"%p{i}" for i in range(len(case.types)))
    types = ", ".join(case.types)
    mv = f"""func.func @mv(%x: tensor<1x{K}xf32>, {params}) -> tensor<1x?xf32> {{
  %y = quant.qmatmul {case.attr} %x, {uses} : (tensor<1x{K}xf32>, {types}) -> tensor<1x?xf32>
  func.return %y : tensor<1x?xf32>
}}"""
    deq = f"""func.func @deq({params}) -> tensor<?x{K}xf32> {{
  %y = quant.dequantize {case.attr} {uses} : ({types}) -> tensor<?x{K}xf32>
  func.return %y : tensor<?x{K}xf32>
}}"""
    return mv, deq


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


class Runner:
    """Runs one case's programs on the GPU (or, for --dry-run, the CPU)."""

    def __init__(self, gpu: cuda.GpuDevice | None, repeats: int):
        self.gpu = gpu
        self.repeats = repeats

    def run(self, case: Case, x: np.ndarray) -> dict:
        mv, deq = graphs(case)
        weight_bytes = sum(a.nbytes for a in case.packed)
        result: dict = {"name": case.name, "weight_mb": weight_bytes / 2**20}
        for kind, source in (("qmatmul", mv), ("dequantize", deq)):
            out_shape = (1, case.rows) if kind == "qmatmul" else (case.rows, K)
            seconds, out = self.time(source, kind, case, x, out_shape)
            result[kind + "_gbs"] = weight_bytes / seconds / 1e9
            if kind == "dequantize":
                result["dequantize_out_gbs"] = case.rows * K * 4 / seconds / 1e9
            result[kind + "_matches_cpu"] = self.matches_cpu(source, kind, case, x, out)
        return result

    def time(self, source: str, kind: str, case: Case, x: np.ndarray, out_shape):
        if self.gpu is None:  # dry run on the CPU
            program = load_program(compile_source(source, "cpu"), threads=1)
            inputs = [x, *case.packed] if kind == "qmatmul" else case.packed
            t = time.perf_counter()
            (out,) = program(inputs)
            return time.perf_counter() - t, out
        gpu = self.gpu
        compiled = compile_source(source, "gpu", gpu_arch=gpu.arch)
        program = load_program(compiled, device=gpu.bind(compiled.ptx))
        resident = [gpu.upload(a) for a in case.packed]
        inputs = [gpu.upload(x), *resident] if kind == "qmatmul" else resident
        out = gpu.alloc(out_shape, "float32")
        program(inputs, outputs=[out])  # warm-up (module load, first launch)
        gpu.synchronize()
        t = time.perf_counter()
        for _ in range(self.repeats):
            program(inputs, outputs=[out])
        gpu.synchronize()
        seconds = (time.perf_counter() - t) / self.repeats
        host = out.to_numpy()
        for buf in (*inputs, out):
            buf.free()
        return seconds, host

    def matches_cpu(self, source: str, kind: str, case: Case, x: np.ndarray, out) -> bool:
        program = load_program(compile_source(source, "cpu"), threads=4)
        head = case.head(CHECK_ROWS)
        (cpu,) = program([x, *head] if kind == "qmatmul" else head)
        if kind == "qmatmul":
            return bool(np.allclose(out[:, :CHECK_ROWS], cpu, rtol=1e-4, atol=1e-3))
        return bool(np.array_equal(out[:CHECK_ROWS].view(np.uint32), cpu.view(np.uint32)))


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
    best = float("inf")
    for _ in range(repeats):
        gpu.synchronize()
        t = time.perf_counter()
        gpu.driver.call(
            "cuMemcpyDtoD_v2",
            ctypes.c_uint64(dst.ptr),
            ctypes.c_uint64(src.ptr),
            ctypes.c_size_t(nbytes),
        )
        gpu.synchronize()
        best = min(best, time.perf_counter() - t)
    src.free()
    dst.free()
    return 2 * nbytes / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="quantir GPU tests and bandwidth benchmark")
    parser.add_argument("--no-tests", action="store_true", help="skip the GPU tests")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--encodings", default="", help="comma-separated subset (q4_k,gptq4,...)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="small weights on the CPU, to check this script without a GPU",
    )
    args = parser.parse_args(argv)
    gpu = None
    if not args.dry_run:
        if not cuda.available():
            print(
                "gpu_check: no GPU: the CUDA driver or a device is not available", file=sys.stderr
            )
            return 2
        if not args.no_tests:
            root = Path(__file__).resolve().parent.parent
            rc = subprocess.call(
                [sys.executable, "-m", "pytest", "-q", "-m", "gpu", str(root / "tests" / "gpu")]
            )
            print(f"GPU tests: exit status {rc}", flush=True)
        gpu = cuda.GpuDevice.get(0)
    bw = copy_bandwidth(gpu, nbytes=(1 << 30) if gpu else (64 << 20))
    where = f"GPU {gpu.arch}" if gpu else "CPU dry run"
    print(f"{where}: copy bandwidth {bw / 1e9:.0f} GB/s (bytes read + written)", flush=True)
    wanted = {s.strip().lower() for s in args.encodings.split(",") if s.strip()}
    min_bytes = 256 << 20 if gpu else 1 << 20
    cases = all_cases(min_bytes, wanted, np.random.default_rng(0))
    runner = Runner(gpu, args.repeats)
    x = np.random.default_rng(1).standard_normal((1, K)).astype(np.float32)
    print(
        f"{'encoding':<12} {'MB':>6} {'qmatmul GB/s':>13} {'of copy':>8} {'deq GB/s':>9} "
        f"{'out GB/s':>9} {'=cpu':>5}"
    )
    failures = 0
    for case in cases:
        r = runner.run(case, x)
        ok = r["qmatmul_matches_cpu"] and r["dequantize_matches_cpu"]
        frac = r["qmatmul_gbs"] * 1e9 / bw
        target = case.name in ("q4_k", "gptq4-g128") and gpu is not None
        verdict = (" PASS" if frac >= 0.5 else " FAIL") if target else ""
        failures += int(not ok) + int(target and frac < 0.5)
        print(
            f"{case.name:<12} {r['weight_mb']:6.0f} {r['qmatmul_gbs']:13.1f} {frac:8.0%} "
            f"{r['dequantize_gbs']:9.1f} {r['dequantize_out_gbs']:9.1f} {str(ok):>5}{verdict}",
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
