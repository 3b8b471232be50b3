"""Helpers the kernel tests share (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np
import pytest

PIPELINE_NAMES = [None, "quantir-cpu-scalar"]
"""The default (vectorized) CPU pipeline, and the GPU's scalar lowering run on the CPU."""
PIPELINES = [pytest.param(None, id="cpu"), pytest.param("quantir-cpu-scalar", id="cpu-scalar")]

EXACT_PIPELINE_NAMES = ["quantir-cpu-exact", "quantir-cpu-scalar"]
"""The pipelines whose GGUF qmatmul multiplies exactly dequantized weights by exact x
(the default CPU pipeline quantizes x to int8: tests/runtime/test_kernels_int8.py)."""
EXACT_PIPELINES = [
    pytest.param("quantir-cpu-exact", id="cpu-exact"),
    pytest.param("quantir-cpu-scalar", id="cpu-scalar"),
]


def assert_bits_equal(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """float32 `ours` equals `ref` bit for bit (NaN payloads and signs of zero included)."""
    assert ours.dtype == np.float32 and ours.shape == ref.shape, (ours.dtype, ours.shape)
    a, b = ours.view(np.uint32), ref.astype(np.float32).view(np.uint32)
    bad = a != b
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {idx}: "
            f"got {int(a[idx]):#010x} ({ours[idx]!r}), expected {int(b[idx]):#010x} "
            f"({ref[idx]!r})"
        )


def random_x(rng: np.random.Generator, shape) -> np.ndarray:
    """Activations: normal, with rows spanning several magnitudes."""
    x = rng.standard_normal(shape)
    scale = np.exp2(rng.integers(-8, 9, shape[:-1] + (1,)))
    return (x * scale).astype(np.float32)
