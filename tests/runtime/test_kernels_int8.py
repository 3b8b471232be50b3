"""The default CPU qmatmul path: int8 activations and integer dot products.

x is quantized per run of 32 elements to xq in [-127, 127] with one scale
xd = max|x| / 127 (for Q2_K and Q3_K on the vector-dot path, one scale per
run of 256, the formats' blocks: `BlockLayout.int8_integer_blocks`; the bound
below takes that larger scale on every path), then multiplied with the
weights' integer codes. So the
kernel computes y' = sum_k w_k * xh_k with xh_k = xd_k * xq_k, not
y = sum_k w_k x_k. Two checks, both per output element against float64:

1. A worst-case bound. |xh_k - x_k| <= xd_k / 2 (round to nearest; the
   scale and its inverse carry a relative error of a few 2**-24, covered by
   0.5001), so |y' - y| <= 0.5001 * sum_k |w_k| xd_k. The float32 arithmetic
   on top (scale products, conversions, FMAs, offsets) is bounded as for the
   exact path (test_kernels_gguf.py), with R_k the range magnitude of element
   k and |xh_k| <= |x_k| + xd_k.
2. Exact arithmetic. With one element of +-127 in a run of 32 and the
   others small integers (or the run all zero), xd = 1 (or 0) and xh = x
   exactly; with fp16 fields +-2**e every float32 operation is then exact
   too, so the result must equal the float64 reference bit for bit, which
   catches a single wrong code or dot.

Plus the normwise relative error on realistic data (weights quantized from
normal values): documented as at most 1e-2 for every encoding.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_checks import assert_bits_equal, random_x
from test_kernels_gguf import (
    ENCODINGS,
    LAYOUTS,
    N_ROWS,
    _blocks_for,
    _exact_case,
    k_values,
    range_magnitude,
    reference,
)

from quantir.compiler.backend.cpu_codegen import amx_usable
from quantir.compiler.encodings import layout_for
from quantir.compiler.pipeline import cpu_lowering
from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime import api
from quantir.runtime.quantize import quantize

EPS32 = float(np.finfo(np.float32).eps)
RUN = 32
NORMWISE_BOUND = 1e-2
"""The documented normwise relative error of the int8 path (README, lowering docs)."""

# Both int8 kernels: AMX tiles from 16 (or 32) rows of x, forced on (these test
# weights are below the size `amx=auto` gives tiles; skipped on hosts without
# AMX), the default pipeline, and vector dot products only.
INT8_PIPELINES = [
    pytest.param(
        cpu_lowering(int8=True, amx="on"),
        id="tiles",
        marks=pytest.mark.skipif(not amx_usable(), reason="the host has no AMX tiles"),
    ),
    pytest.param(None, id="default"),
    pytest.param(cpu_lowering(int8=True, amx="off"), id="no-tiles"),
]
ROWS = (1, 3, 16, 37, 64)
"""A lone row, a tail, one tile of 16 rows, tiles with a partial last one, full tiles."""


def activation_scales(x: np.ndarray, span: int = RUN) -> np.ndarray:
    """xd_k for every element of x [M, K]: max |x| of its run of `span`, over 127."""
    runs = np.abs(x.astype(np.float64)).reshape(*x.shape[:-1], -1, span)
    return np.repeat(runs.max(-1) / 127.0, span, axis=-1)


def scale_span(name: str) -> int:
    """The longest run of x that shares one scale for this encoding (on some path)."""
    layout = layout_for(QuantizationEncoding.parse(name))
    return layout.elements_per_block if layout.int8_integer_blocks else RUN


def check_int8_bound(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, r: np.ndarray, span: int = RUN
) -> None:
    k = x.shape[-1]
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    xd = activation_scales(x, span)
    ref = x64 @ w64.T
    quantization = 0.5001 * (xd @ np.abs(w64).T)
    arithmetic = 4.0 * (k + 8) * EPS32 * ((np.abs(x64) + xd) @ r.T)
    bound = quantization + arithmetic + (2 * k + 8) * 2.0**-149
    err = np.abs(y.astype(np.float64) - ref)
    bad = ~(err <= bound)
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} outside the int8 bound; first at {idx}: "
            f"got {y[idx]!r}, float64 {ref[idx]!r}, |err| {err[idx]:.3e} > {bound[idx]:.3e}"
        )


@pytest.mark.parametrize("pipeline", INT8_PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("which_k", [0, 1])
def test_int8_error_bound(name, which_k, pipeline):
    lay = LAYOUTS[name]
    k = k_values(lay)[which_k]
    packed = _blocks_for(name, k, 1)
    w, r = reference(lay, packed), range_magnitude(lay, packed)
    x = random_x(np.random.default_rng(7), (64, k))
    for m in ROWS:
        y = api.qmatmul(name, x[:m], packed, pipeline=pipeline)
        check_int8_bound(y, x[:m], w, r, scale_span(name))


@pytest.mark.parametrize("name", ["q2_k", "q3_k"])
def test_int8_integer_blocks_share_one_x_scale_per_block(name):
    """Q2_K and Q3_K take one x scale per block of 256 on the vector-dot path: a
    run of small values next to a large one is quantized on the large one's
    scale (its error is then above the per-32 bound, below the per-256 one)."""
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    rng = np.random.default_rng(5)
    packed = quantize(name, rng.standard_normal((8, k)).astype(np.float32))
    w = reference(lay, packed).astype(np.float64)
    x = rng.standard_normal((1, k)).astype(np.float32) * 1e-3
    x[0, ::256] = 100.0  # one large element in the first run of every block
    y = api.qmatmul(name, x, packed, pipeline=cpu_lowering(int8=True, amx="off"))
    ref = x.astype(np.float64) @ w.T
    xh = np.round(x.astype(np.float64) / activation_scales(x, 256)) * activation_scales(x, 256)
    np.testing.assert_allclose(y, xh @ w.T, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    r = range_magnitude(lay, packed)
    check_int8_bound(y, x, w, r, 256)


@pytest.mark.parametrize("pipeline", INT8_PIPELINES)
@pytest.mark.parametrize("name", ENCODINGS)
def test_int8_exact_arithmetic(name, pipeline):
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed, x = _exact_case(lay, k, N_ROWS, 64, 5)
    rng = np.random.default_rng(11)
    runs = x.reshape(64, -1, RUN)
    runs[:, :, 0] = rng.choice([-127.0, 127.0], runs.shape[:2])  # xd = 1 in every run ...
    # ... of every fourth run (a different quarter per row of x, so that together the
    # rows use every code); the other runs are zero (xd = 0), which keeps the sums
    # small enough to stay exact.
    keep = (np.arange(runs.shape[1])[None, :] + np.arange(64)[:, None]) % 4 == 0
    runs[~keep] = 0.0
    w = reference(lay, packed).astype(np.float64)
    worst = (np.abs(x).astype(np.float64) @ (3 * range_magnitude(lay, packed)).T).max()
    assert worst < 2.0**22, f"test data too large for exact float32 sums ({worst})"
    ref = x.astype(np.float64) @ w.T
    for m in ROWS:
        y = api.qmatmul(name, x[:m], packed, pipeline=pipeline)
        assert_bits_equal(y, ref[:m].astype(np.float32), f"{name} int8 exact qmatmul M={m}")


@pytest.mark.parametrize("name", ENCODINGS)
def test_int8_normwise_error_on_quantized_normal_weights(name):
    rng = np.random.default_rng(3)
    n, k = 48, 1024
    packed = quantize(name, rng.standard_normal((n, k)).astype(np.float32))
    w = reference(LAYOUTS[name], packed).astype(np.float64)
    x = rng.standard_normal((5, k)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T
    y = api.qmatmul(name, x, packed)
    err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert err < NORMWISE_BOUND, f"{name}: normwise relative error {err:.2e}"
    exact = api.qmatmul(name, x, packed, pipeline="quantir-cpu-exact")
    assert np.linalg.norm(exact - ref) / np.linalg.norm(ref) < 1e-5


@pytest.mark.parametrize("m", [3, 20])
@pytest.mark.parametrize("name", ["q4_0", "q4_k", "q6_k", "q8_0"])
def test_int8_non_finite_x_gives_non_finite_rows(name, m):
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    rng = np.random.default_rng(9)
    packed = quantize(name, rng.standard_normal((8, k)).astype(np.float32))
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[0, 5], x[2, k - 1] = np.nan, np.inf
    y = api.qmatmul(name, x, packed)
    assert not np.isfinite(y[0]).any() and not np.isfinite(y[2]).any()
    assert np.isfinite(np.delete(y, [0, 2], axis=0)).all()


@pytest.mark.skipif(not amx_usable(), reason="the host has no AMX tiles (or may not use them)")
def test_default_pipeline_takes_tiles_from_16_rows():
    """On an AMX host the default CPU kernel holds tile products (taken for M >= 16)."""
    from quantir.compiler.backend.cpu_codegen import target_info
    from quantir.compiler.backend.llvm_translation import translate_module
    from quantir.compiler.pipeline import lower
    from quantir.runtime.jit import parse_source

    source = """func.func @mv(%x: tensor<?x256xf32>, %w: tensor<?x144xui8>) -> tensor<?x?xf32> {
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w
      : (tensor<?x256xf32>, tensor<?x144xui8>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}"""
    module = lower(parse_source(source), "cpu")
    assert "llvm.x86.tdpbusd.internal" in str(translate_module(module, target_info())[0])


@pytest.mark.parametrize("name", ["q4_0", "q4_k"])
def test_int8_zero_x_gives_zero(name):
    lay = LAYOUTS[name]
    k = k_values(lay)[0]
    packed = _blocks_for(name, k, 2)
    y = api.qmatmul(name, np.zeros((2, k), np.float32), packed)
    ref = np.zeros((2, k)) @ reference(lay, packed).astype(np.float64).T  # NaN rows stay NaN
    assert_bits_equal(y, ref.astype(np.float32), f"{name} zero x")


@pytest.mark.parametrize("rank", [1, 3])
def test_int8_x_of_other_ranks(rank):
    name, lay = "q4_k", LAYOUTS["q4_k"]
    k = k_values(lay)[0]
    packed = _blocks_for(name, k, 4)
    w, r = reference(lay, packed), range_magnitude(lay, packed)
    shape = (k,) if rank == 1 else (2, 3, k)
    x = random_x(np.random.default_rng(6), shape)
    y = api.qmatmul(name, x, packed)
    assert y.shape == shape[:-1] + (N_ROWS,)
    check_int8_bound(y.reshape(-1, N_ROWS), x.reshape(-1, k), w, r)


@pytest.mark.skipif(not amx_usable(), reason="the host has no AMX tiles (or may not use them)")
@pytest.mark.parametrize("n,tiles", [(8, False), (4096, True), ("?", True)])
def test_auto_gives_tiles_to_large_or_dynamic_weights(n, tiles):
    """amx=auto leaves the tile body out of small static weights (compile time)."""
    from quantir.compiler.pipeline import lower
    from quantir.runtime.jit import parse_source

    w = f"tensor<{n}x144xui8>"
    source = f"""func.func @mv(%x: tensor<?x256xf32>, %w: {w}) -> tensor<?x{n}xf32> {{
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w
      : (tensor<?x256xf32>, tensor<{n}x144xui8>) -> tensor<?x{n}xf32>
  func.return %y : tensor<?x{n}xf32>
}}"""
    text = str(lower(parse_source(source), "cpu"))
    assert ("amx.tile_muli" in text) == tiles


@pytest.mark.parametrize(("name", "k"), [("q4_0", 6400), ("q2_k", 4352), ("q6_k", 2304)])
def test_int8_rows_of_x_quantized_in_parts(name, k):
    """Rows of x longer than one task of the quantizing kernel are cut into
    parts (the last one short) that threads take separately: every run is
    still quantized (the bound holds) and the result does not depend on the
    thread count."""
    lay = LAYOUTS[name]
    rng = np.random.default_rng(3)
    packed = quantize(name, rng.standard_normal((24, k)).astype(np.float32))
    w, r = reference(lay, packed), range_magnitude(lay, packed)
    x = random_x(rng, (3, k))
    for m in (1, 3):
        y = api.qmatmul(name, x[:m], packed, threads=1)
        check_int8_bound(y, x[:m], w, r, scale_span(name))
        assert_bits_equal(api.qmatmul(name, x[:m], packed, threads=3), y, f"{name} M={m}")
