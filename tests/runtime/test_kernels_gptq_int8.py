"""GPTQ qmatmul on the default CPU path: int8 activations and integer dot products.

Without desc_act and with groups of whole 32-element blocks (group_size a
multiple of 32, or -1 with K a multiple of 32), the default pipeline
quantizes x per run of 32 to xq in [-127, 127] with one scale xd and
multiplies the stored codes with `qrt.dot_u8i8` (compiler/lowering/gptq_int8.py).
The checks are those of test_kernels_int8.py, with GPTQ's range magnitude
R = |s| max(z, |q_max - z|) (test_kernels_gptq.py):

1. the per-element worst-case bound (x quantization plus float32 arithmetic)
   for bits {2, 3, 4, 8}, group sizes {32, 128, -1}, v1 and v2 zero points,
   symmetric and asymmetric layers, M in {1, 3, 64}, N not a multiple of 16
   (4 and 8 bits), on the default pipeline (16-column vectors, then single
   columns) and with a 32-column chunk (the streaming kernel large layers
   use, then its tails);
2. exact arithmetic: one +-127 per run of 32 (xd = 1), scales +-2**e: the
   result equals the float64 reference bit for bit;
3. the normwise relative error on quantized normal weights is below 1e-2.

Layers the int8 path does not cover (desc_act, group sizes that split an
activation block) keep the float kernels: same bits as quantir-cpu-exact,
within the float bound.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from kernel_checks import assert_bits_equal, random_x
from test_kernels_gptq import FORMATS, K_FOR_GROUP, _run, exact_layer, range_magnitude, rtn_layer
from test_kernels_int8 import NORMWISE_BOUND, check_int8_bound

from quantir.runtime import api
from quantir.runtime.gptq import dequantize_gptq_reference, quantize_gptq_rtn

BITS = (2, 3, 4, 8)
GROUPS = (32, 128, -1)
RUN = 32
CHUNKED = (
    "quantir-bufferize,lower-quant-to-loops{gptq_chunk=32},lower-qnn-to-loops,"
    "canonicalize,cse,outline-kernels"
)
"""The default CPU lowering with 32-column chunks, so that small layers take the
streaming kernel (1024 columns by default) and its tails."""
PIPELINES = [pytest.param(None, id="cpu"), pytest.param(CHUNKED, id="cpu-chunk32")]

GRID = list(itertools.product(BITS, GROUPS, FORMATS))
GRID_PARAMS = [pytest.param(*c, id=f"{c[0]}bit-g{c[1]}-{c[2]}") for c in GRID]


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("bits,gs,fmt", GRID_PARAMS)
def test_int8_error_bound(bits, gs, fmt, pipeline):
    x = random_x(np.random.default_rng(bits * 5 + gs), (64, K_FOR_GROUP[gs]))
    for sym in (False, True):
        layer = rtn_layer(bits, gs, False, fmt, sym)
        w, r = dequantize_gptq_reference(layer), range_magnitude(layer)
        for m in (1, 3, 64):  # a lone row, a tail of the m-tiles, full m-tiles
            y = _run("qmatmul", layer, pipeline=pipeline, x=x[:m])
            check_int8_bound(y, x[:m], w, r)


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("bits,gs,fmt", GRID_PARAMS)
def test_int8_exact_arithmetic(bits, gs, fmt, pipeline):
    layer = exact_layer(bits, gs, False, fmt)
    k = layer.in_features
    rng = np.random.default_rng(bits + gs + 17)
    x = rng.integers(-1, 2, (64, k)).astype(np.float32)
    runs = x.reshape(64, -1, RUN)
    # One +-127 per run of 32 makes xd = 1 (x quantizes exactly); it moves around the run
    # so that every position of the permuted order meets a large value.
    where = rng.integers(0, RUN, runs.shape[:2])
    np.put_along_axis(runs, where[..., None], rng.choice([-127.0, 127.0], runs.shape[:2] + (1,)), 2)
    w = dequantize_gptq_reference(layer).astype(np.float64)
    worst = (np.abs(x).astype(np.float64) @ (3 * range_magnitude(layer)).T).max()
    assert worst < 2.0**22, f"test data too large for exact float32 sums ({worst})"
    ref = x.astype(np.float64) @ w.T
    for m in (1, 3, 64):
        y = _run("qmatmul", layer, pipeline=pipeline, x=x[:m])
        assert_bits_equal(y, ref[:m].astype(np.float32), f"int8 exact qmatmul M={m} {layer!r}")


@pytest.mark.parametrize("bits", BITS)
def test_int8_normwise_error_on_quantized_normal_weights(bits):
    rng = np.random.default_rng(bits)
    n, k = 96, 1024
    layer = quantize_gptq_rtn(
        rng.standard_normal((n, k)) * 0.02, bits, 128, sym=False, checkpoint_format="gptq", seed=1
    )
    w = dequantize_gptq_reference(layer).astype(np.float64)
    x = rng.standard_normal((5, k)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T
    y = api.qmatmul("gptq", x, layer)
    err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert err < NORMWISE_BOUND, f"{bits}-bit: normwise relative error {err:.2e}"
    exact = api.qmatmul("gptq", x, layer, pipeline="quantir-cpu-exact")
    assert np.linalg.norm(exact - ref) / np.linalg.norm(ref) < 1e-5


@pytest.mark.parametrize("bits,gs,desc", [(4, 128, True), (8, 32, True), (4, 40, False)])
def test_layouts_outside_int8_keep_the_float_path(bits, gs, desc, assert_qmatmul_close):
    """desc_act, or groups that split an activation block: the exact float kernels."""
    layer = rtn_layer(bits, gs, desc, "gptq", False)
    w, r = dequantize_gptq_reference(layer), range_magnitude(layer)
    x = random_x(np.random.default_rng(21), (64, layer.in_features))
    for m in (1, 3, 64):
        y = _run("qmatmul", layer, x=x[:m])
        assert_qmatmul_close(y, x[:m], w, r)
        exact = _run("qmatmul", layer, x=x[:m], pipeline="quantir-cpu-exact")
        assert_bits_equal(y, exact, f"default vs exact pipeline M={m} {layer!r}")


def test_int8_zero_and_non_finite_x():
    layer = rtn_layer(4, 128, False, "gptq", False)
    k = layer.in_features
    x = random_x(np.random.default_rng(22), (3, k))
    x[0] = 0.0
    x[2, 7] = np.nan
    y = _run("qmatmul", layer, x=x)
    assert_bits_equal(y[:1], np.zeros((1, layer.out_features), np.float32), "zero row of x")
    assert np.isfinite(y[1]).all() and not np.isfinite(y[2]).any()


# -- background compiling (tests/runtime/conftest.py) --------------------------------------------


def warm_cases():
    """Compile calls for every kernel the tests above use, in test order."""
    cases = [
        functools.partial(_warm, bits, gs, False, fmt, pipeline)
        for (bits, gs, fmt), pipeline in itertools.product(GRID, [None, CHUNKED])
    ]
    for bits, gs, desc in [(4, 128, True), (8, 32, True), (4, 40, False)]:
        for pipeline in (None, "quantir-cpu-exact"):
            cases.append(functools.partial(_warm, bits, gs, desc, "gptq", pipeline))
    return cases


def _warm(bits, gs, desc, fmt, pipeline) -> None:
    layer = rtn_layer(bits, gs, desc, fmt, False)
    x = np.zeros((1, layer.in_features), np.float32)
    _run("qmatmul", layer, pipeline=pipeline, x=x)
