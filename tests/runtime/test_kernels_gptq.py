"""The compiled GPTQ kernels (eager dequantize and qmatmul) against the numpy reference.

Every kernel configuration bits {2, 3, 4, 8} x group_size {-1, 32, 128, 40}
x desc_act x checkpoint_format {gptq, gptq_v2} is compiled for both CPU
pipelines ("quantir-cpu" and "quantir-cpu-scalar", the GPU's scalar
lowering; qmatmul, whose default CPU path quantizes x to int8 and is
checked in test_kernels_gptq_int8.py, uses "quantir-cpu-exact" instead of
"quantir-cpu") and run on symmetric and asymmetric layers built by
``quantize_gptq_rtn``, and on layers built for exact float32 arithmetic:

* dequantize is bit-identical to ``dequantize_gptq_reference``;
* qmatmul (M = 1, 3, 64) is within the per-element bound derived in
  test_kernels_gguf.py, |err| <= 3.1 (K + 2) eps32 sum_k R_k |x_k|, where
  for GPTQ w = s (q - z), so R = |s| max(z, |q_max - z|) (z is the real zero
  point, which for the v1 format can be 2**bits, one past the code range);
* on the exact layers (scales +-2**e, x small integers) qmatmul equals the
  float64 reference bit for bit.

group_size 40 is the non-power-of-two divisor: for 2 and 3 bits it is not a
multiple of the packing run (16 and 32 codes), so groups start inside words
(the kernels' general path even without desc_act); for 4 and 8 bits it is.
N must be a multiple of the packing run along N (qzeros packs N): 16 for 2
bits, 32 for 3, 8 for 4 and 4 for 8, so N = 48, 96, 40 and 36 (the last two
not multiples of the 16-column vectors).

The sym flag does not enter the dequantization formula; symmetric layers are
simply layers whose zero points are all 2**(bits-1). So the grid compiles
each kernel with sym = false (valid for every layer) and runs both kinds of
layer through it, and ``test_sym_config`` compiles sym = true kernels, with
the layer's own config, for every bits value and pipeline (group size,
desc_act and format rotate). That keeps the compile count, which dominates
the run time, at about half of the full product.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import pytest
from kernel_checks import (
    EXACT_PIPELINE_NAMES,
    EXACT_PIPELINES,
    PIPELINE_NAMES,
    PIPELINES,
    assert_bits_equal,
    random_x,
)

from quantir.dialects.encoding import QuantizationConfig
from quantir.runtime import api
from quantir.runtime.gptq import (
    GPTQLinear,
    dequantize_gptq_reference,
    pack_qweight,
    pack_qzeros,
    quantize_gptq_rtn,
)

BITS = (2, 3, 4, 8)
N_FOR_BITS = {2: 48, 3: 96, 4: 40, 8: 36}
K_FOR_GROUP = {-1: 224, 32: 96, 128: 256, 40: 160}
FORMATS = ("gptq", "gptq_v2")

GRID = list(itertools.product(BITS, K_FOR_GROUP, (False, True), FORMATS))


def _grid_id(case) -> str:
    bits, gs, desc, fmt = case
    return f"{bits}bit-g{gs}-{'act' if desc else 'noact'}-{fmt}"


GRID_PARAMS = [pytest.param(*c, id=_grid_id(c)) for c in GRID]


def _config(bits: int, gs: int, desc: bool, sym: bool = False) -> QuantizationConfig:
    return QuantizationConfig("gptq", bits, gs, desc_act=desc, sym=sym)


@functools.cache
def rtn_layer(bits: int, gs: int, desc: bool, fmt: str, sym: bool) -> GPTQLinear:
    """A round-to-nearest layer of realistic weights (a few rows much larger)."""
    n, k = N_FOR_BITS[bits], K_FOR_GROUP[gs]
    rng = np.random.default_rng([bits, gs + 1, desc, sym, len(fmt)])
    w = rng.standard_normal((n, k)) * 0.05
    w[::7] *= 40.0
    return quantize_gptq_rtn(
        w, bits, gs, sym=sym, desc_act=desc, checkpoint_format=fmt, seed=bits + gs
    )


@functools.cache
def exact_layer(bits: int, gs: int, desc: bool, fmt: str) -> GPTQLinear:
    """Random codes and zeros, scales +-2**e (e in -3..-1): float32 sums stay exact."""
    n, k = N_FOR_BITS[bits], K_FOR_GROUP[gs]
    config = _config(bits, gs, desc)
    groups = config.num_groups(k)
    rng = np.random.default_rng([bits, gs + 1, desc, len(fmt), 99])
    q = rng.integers(0, 1 << bits, (k, n))
    stored_zero = rng.integers(0, 1 << bits, (groups, n))
    exp = rng.integers(-3, 0, (groups, n)).astype(np.float64)
    scales = (rng.choice([-1.0, 1.0], (groups, n)) * np.exp2(exp)).astype(np.float16)
    if desc:
        g_idx = rng.integers(0, groups, k).astype(np.int32)  # any assignment is valid
    else:
        g_idx = (np.arange(k) // config.effective_group_size(k)).astype(np.int32)
    return GPTQLinear(
        name="exact",
        qweight=pack_qweight(q, bits),
        qzeros=pack_qzeros(stored_zero, bits),
        scales=scales,
        g_idx=g_idx,
        bias=None,
        config=config,
        checkpoint_format=fmt,
    )


def range_magnitude(layer: GPTQLinear) -> np.ndarray:
    """R [N, K] = |s| max(z, |q_max - z|): the largest |value| over the code range."""
    g = layer.g_idx.astype(np.intp)
    s = np.abs(layer.scales.astype(np.float64))[g]  # [K, N]
    z = layer.zero_points().astype(np.float64)[g]
    qmax = float((1 << layer.config.bits) - 1)
    return np.ascontiguousarray((s * np.maximum(z, np.abs(qmax - z))).T)


def _run(op, layer: GPTQLinear, *, sym: bool = False, pipeline=None, x=None, **kw):
    """Call the eager API with the grid's kernel config (sym = false) for `layer`."""
    cfg = dataclasses.replace(layer.config, sym=sym)
    fmt = layer.checkpoint_format
    if op == "dequantize":
        return api.dequantize(
            "gptq", layer.tensors(), config=cfg, checkpoint_format=fmt, pipeline=pipeline, **kw
        )
    return api.qmatmul(
        "gptq", x, layer.tensors(), config=cfg, checkpoint_format=fmt, pipeline=pipeline, **kw
    )


# -- the grid ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("bits,gs,desc,fmt", GRID_PARAMS)
def test_dequantize_matches_reference(bits, gs, desc, fmt, pipeline):
    for layer in (
        rtn_layer(bits, gs, desc, fmt, False),
        rtn_layer(bits, gs, desc, fmt, True),
        exact_layer(bits, gs, desc, fmt),
    ):
        y = _run("dequantize", layer, pipeline=pipeline)
        assert y.shape == layer.logical_shape
        assert_bits_equal(y, dequantize_gptq_reference(layer), f"dequantize {layer!r}")


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("bits,gs,desc,fmt", GRID_PARAMS)
def test_qmatmul_within_bound(bits, gs, desc, fmt, pipeline, assert_qmatmul_close):
    x = random_x(np.random.default_rng(bits * 7 + gs), (64, K_FOR_GROUP[gs]))
    for sym in (False, True):
        layer = rtn_layer(bits, gs, desc, fmt, sym)
        w, r = dequantize_gptq_reference(layer), range_magnitude(layer)
        for m in (1, 3, 64):
            y = _run("qmatmul", layer, pipeline=pipeline, x=x[:m])
            assert_qmatmul_close(y, x[:m], w, r)


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("bits,gs,desc,fmt", GRID_PARAMS)
def test_qmatmul_exact_arithmetic(bits, gs, desc, fmt, pipeline):
    layer = exact_layer(bits, gs, desc, fmt)
    k = layer.in_features
    x = np.random.default_rng(bits + gs).integers(-1, 2, (64, k)).astype(np.float32)
    w = dequantize_gptq_reference(layer).astype(np.float64)
    worst = (np.abs(x).astype(np.float64) @ (3 * range_magnitude(layer)).T).max()
    assert worst < 2.0**21, "test data too large for exact float32 sums (grid 2**-3)"
    ref = x.astype(np.float64) @ w.T  # exact, and representable in float32
    for m in (1, 3, 64):
        y = _run("qmatmul", layer, pipeline=pipeline, x=x[:m])
        assert_bits_equal(y, ref[:m].astype(np.float32), f"exact qmatmul M={m} {layer!r}")


# sym = true kernels: one per bits value (and pipeline); group size, desc_act and
# format rotate, so each value of each appears.
SYM_CASES = [
    (bits, list(K_FOR_GROUP)[i], i % 2 == 1, FORMATS[(i // 2) % 2]) for i, bits in enumerate(BITS)
]


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
@pytest.mark.parametrize("bits,gs,desc,fmt", [pytest.param(*c, id=_grid_id(c)) for c in SYM_CASES])
def test_sym_config(bits, gs, desc, fmt, pipeline, assert_qmatmul_close):
    """A symmetric layer passed as a GPTQLinear: the API takes its own config (sym = true)."""
    layer = rtn_layer(bits, gs, desc, fmt, True)
    assert layer.config.sym
    assert_bits_equal(
        api.dequantize("gptq", layer, pipeline=pipeline),
        dequantize_gptq_reference(layer),
        f"dequantize {layer!r}",
    )
    x = random_x(np.random.default_rng(11), (3, layer.in_features))
    y = api.qmatmul("gptq", x, layer, pipeline=pipeline)
    assert_qmatmul_close(y, x, dequantize_gptq_reference(layer), range_magnitude(layer))


# -- x rank, threads ------------------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
def test_qmatmul_x_rank_1(pipeline, assert_qmatmul_close):
    layer = rtn_layer(4, 128, False, "gptq", False)
    x = random_x(np.random.default_rng(12), (layer.in_features,))
    y = _run("qmatmul", layer, pipeline=pipeline, x=x)
    assert y.shape == (layer.out_features,)
    assert_qmatmul_close(y, x, dequantize_gptq_reference(layer), range_magnitude(layer))


@pytest.mark.parametrize("pipeline", EXACT_PIPELINES)
def test_qmatmul_x_rank_3_dynamic_leading_dims(pipeline, assert_qmatmul_close):
    layer = rtn_layer(4, 128, False, "gptq", False)
    w, r = dequantize_gptq_reference(layer), range_magnitude(layer)
    rng = np.random.default_rng(13)
    for lead in [(2, 3), (1, 64), (5, 1), (0, 4)]:
        x = random_x(rng, (*lead, layer.in_features))
        y = _run("qmatmul", layer, pipeline=pipeline, x=x)
        assert y.shape == (*lead, layer.out_features)
        assert_qmatmul_close(y, x, w, r)


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("bits,gs,desc", [(4, 128, False), (3, 40, False), (8, 32, True)])
def test_thread_count_does_not_change_results(bits, gs, desc, pipeline, monkeypatch):
    layer = rtn_layer(bits, gs, desc, "gptq", False)
    x = random_x(np.random.default_rng(14), (5, layer.in_features))
    deq1 = _run("dequantize", layer, pipeline=pipeline, threads=1)
    mm1 = _run("qmatmul", layer, pipeline=pipeline, x=x, threads=1)
    for threads in (2, 3):
        assert_bits_equal(
            _run("dequantize", layer, pipeline=pipeline, threads=threads),
            deq1,
            f"dequantize threads={threads}",
        )
        assert_bits_equal(
            _run("qmatmul", layer, pipeline=pipeline, x=x, threads=threads),
            mm1,
            f"qmatmul threads={threads}",
        )
    monkeypatch.setenv("QUANTIR_NUM_THREADS", "3")
    assert_bits_equal(_run("dequantize", layer, pipeline=pipeline), deq1, "env threads")
    assert_bits_equal(_run("qmatmul", layer, pipeline=pipeline, x=x), mm1, "env threads")


def test_a_layer_brings_its_own_config_and_format():
    """A GPTQLinear's zero-point format applies even when its config is passed too."""
    layer = rtn_layer(4, 128, False, "gptq_v2", False)
    want = api.dequantize("gptq", layer.tensors(), config=layer.config, checkpoint_format="gptq_v2")
    assert_bits_equal(api.dequantize("gptq", layer), want, "the layer alone")
    assert_bits_equal(
        api.dequantize("gptq", layer, config=layer.config), want, "the layer and its config"
    )
    other = dataclasses.replace(layer.config, group_size=32)
    with pytest.raises(ValueError, match="differs from the layer's own"):
        api.dequantize("gptq", layer, config=other)
    with pytest.raises(ValueError, match="checkpoint_format='gptq' differs"):
        api.dequantize("gptq", layer, checkpoint_format="gptq")
    with pytest.raises(ValueError, match="q4_k takes no checkpoint_format"):
        api.dequantize("q4_k", np.zeros((1, 144), np.uint8), checkpoint_format="gptq")


# -- background compiling (tests/runtime/conftest.py) --------------------------------------------


def warm_cases():
    """Compile calls for every kernel the tests above use, in test order."""
    cases = []
    for op, pipelines in (("dequantize", PIPELINE_NAMES), ("qmatmul", EXACT_PIPELINE_NAMES)):
        for case, pipeline in itertools.product(GRID, pipelines):
            cases.append(functools.partial(_warm, op, *case, False, pipeline))
    for case, pipeline in itertools.product(SYM_CASES, EXACT_PIPELINE_NAMES):
        cases.append(functools.partial(_warm, "dequantize", *case, True, pipeline))
        cases.append(functools.partial(_warm, "qmatmul", *case, True, pipeline))
    for rank, pipeline in itertools.product((1, 3), EXACT_PIPELINE_NAMES):
        cases.append(
            functools.partial(_warm, "qmatmul", 4, 128, False, "gptq", False, pipeline, rank)
        )
    return cases


def _warm(op, bits, gs, desc, fmt, sym, pipeline, rank=2) -> None:
    layer = rtn_layer(bits, gs, desc, fmt, sym)
    x = np.zeros((1,) * (rank - 1) + (layer.in_features,), np.float32)
    _run(op, layer, sym=sym, pipeline=pipeline, x=x)
