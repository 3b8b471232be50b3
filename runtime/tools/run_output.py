"""`quantir-run` results: printed summaries, .npy files written atomically, timings."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

from quantir.runtime.atomic import atomic_output_path

__all__ = ["format_result", "format_seconds", "format_timings", "save_npy_atomic"]


def format_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _stats(array: np.ndarray) -> str:
    if array.size == 0:
        return "empty"
    if array.dtype.kind not in "fiu":
        return ""
    values = array.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    parts = []
    if finite.any():
        v = values[finite]
        parts.append(
            f"min {v.min():.6g}  max {v.max():.6g}  mean {v.mean():.6g}  std {v.std():.6g}"
        )
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    if nan or inf:
        parts.append(f"nan {nan}  inf {inf}")
    return "  ".join(parts)


def format_result(name: str, array: np.ndarray, full: bool = False) -> str:
    """A header line (name, dtype, shape, statistics) and the values (numpy's print)."""
    shape = "[" + ", ".join(map(str, array.shape)) + "]"
    header = f"{name}: {array.dtype.name} {shape}"
    stats = _stats(array)
    if stats:
        header += f"  {stats}"
    # A summary rounds to 4 digits; --print-full shows every value at numpy's
    # default precision (8 digits, enough to tell float32 values apart).
    body = np.array2string(
        array,
        threshold=sys.maxsize if full else 1000,
        precision=8 if full else 4,
        suppress_small=True,
        edgeitems=3,
        max_line_width=100,
    )
    return f"{header}\n{body}"


def format_timings(compile_s: float, runs: list[float], load_s: float | None = None) -> str:
    lines = []
    if load_s is not None:
        lines.append(f"weights: {format_seconds(load_s)} (open and check)")
    lines.append(f"compile: {format_seconds(compile_s)}")
    if len(runs) == 1:
        lines.append(f"run:     {format_seconds(runs[0])}")
    else:
        lines.append(
            f"run:     min {format_seconds(min(runs))}, median "
            f"{format_seconds(statistics.median(runs))} ({len(runs)} runs)"
        )
    return "\n".join(lines)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write `array` as .npy at `path` (exactly that name), replacing it atomically.

    A reader never sees a partial file, and an interrupted write leaves any
    previous file intact (see `quantir.runtime.atomic`).
    """
    # A file object, not a path: np.save would append ".npy" to a path.
    with atomic_output_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
