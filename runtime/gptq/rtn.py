"""Round-to-nearest GPTQ quantization of float weights (to build test checkpoints).

This is GPTQ's quantization grid without GPTQ's error-compensating weight
updates (no Hessian, no calibration data). For logical weights W [N, K] and
the groups formed along K:

* Groups. Without desc_act, group g holds input features g*gs .. g*gs+gs-1
  (gs = group_size, or K when it is -1). With desc_act a permutation ``perm``
  of range(K) (given, or ``numpy.random.default_rng(seed).permutation(K)``)
  plays the role of act-order's column order: group g holds features
  perm[g*gs .. g*gs+gs-1], so g_idx[perm[i]] = i // gs. qweight, like in real
  act-order checkpoints, stays in the original k order; only g_idx encodes
  the permutation.
* Grid, per group and output row (all arithmetic in float64, maxq = 2**bits-1):
  - sym: a = max |w| (1 if the group is all zero), scale = 2a / maxq, zero =
    2**(bits-1), as GPTQ's symmetric quantizer. (GPTQ would pick a one-sided
    range for an all-positive group; we always use +-a, so no weight is clipped.)
  - asym: lo = min(min w, 0), hi = max(max w, 0) ((-1, 1) if both are 0), scale
    = (hi - lo) / maxq, zero = round(-lo / s16) clipped to [0, maxq].
  - The stored fp16 scale s16 is the float16 nearest to scale, moved one step
    up when that is below scale, so the grid still covers the group.
  - checkpoint_format "gptq" (v1) stores zero - 1, so a zero of 0 cannot be
    stored (GPTQ's own v1 writer overflows there). For asym v1 such groups use
    zero = 1 and scale = hi / (maxq - 1) instead, keeping the error bound.
* Codes: q = clip(round_half_even(w / s16) + zero, 0, maxq). Every weight
  then dequantizes to within s16 / 2 of its value.
"""

from __future__ import annotations

import numpy as np

from quantir.dialects.encoding import QuantizationConfig, zero_point_offset
from quantir.runtime.gptq.layer import GPTQFormatError, GPTQLinear, expected_tensor_specs
from quantir.runtime.gptq.packing import pack_qweight, pack_qzeros

__all__ = ["act_order_g_idx", "quantize_gptq_rtn"]


def act_order_g_idx(perm: np.ndarray, group_size: int) -> np.ndarray:
    """g_idx of an act-order layer whose groups follow ``perm``: g_idx[perm[i]] = i // gs."""
    perm = np.asarray(perm)
    g_idx = np.empty(perm.shape[0], dtype=np.int32)
    g_idx[perm] = np.arange(perm.shape[0], dtype=np.int64) // group_size
    return g_idx


def _column_order(k: int, desc_act: bool, perm: object, seed: int | None) -> np.ndarray:
    if not desc_act:
        if perm is not None:
            raise GPTQFormatError("quantize_gptq_rtn: perm is only meaningful with desc_act=True")
        return np.arange(k)
    if perm is None:
        return np.random.default_rng(seed).permutation(k)
    order = np.asarray(perm)
    if (
        order.shape != (k,)
        or order.dtype.kind not in "iu"
        or not np.array_equal(np.sort(order), np.arange(k))
    ):
        raise GPTQFormatError(
            f"quantize_gptq_rtn: perm must be a permutation of range(K={k}) "
            f"(integer array of shape [{k}]), got {order.dtype} {list(order.shape)}"
        )
    return order.astype(np.intp)


def _fp16_at_least(scale: np.ndarray) -> np.ndarray:
    """The float16 nearest to each scale, stepped up where it falls below it."""
    with np.errstate(over="ignore"):
        half = scale.astype(np.float16)
    if not np.all(np.isfinite(half)):
        raise GPTQFormatError(
            f"quantize_gptq_rtn: a group scale ({float(scale.max()):g}) overflows float16 "
            "(max 65504); the weights are too large for GPTQ's fp16 scales"
        )
    below = half.astype(np.float64) < scale
    half[below] = np.nextafter(half[below], np.float16(np.inf))
    return half


def quantize_gptq_rtn(
    weight: np.ndarray,
    bits: int,
    group_size: int,
    *,
    sym: bool = True,
    desc_act: bool = False,
    checkpoint_format: str = "gptq",
    perm: np.ndarray | None = None,
    seed: int | None = 0,
    name: str = "linear",
    bias: np.ndarray | None = None,
) -> GPTQLinear:
    """Quantize float weights [N, K] to a GPTQ layer by round to nearest (module doc).

    ``perm`` (desc_act only) fixes the act-order column order; otherwise a
    random permutation drawn with ``seed`` is used. ``bias`` [N] is stored as
    float16. Raises :class:`GPTQFormatError` (a ValueError) for bad input:
    non-2-D or non-finite weights, K or N not packable with ``bits``,
    group_size not dividing K, an invalid perm or config value.
    """
    try:
        config = QuantizationConfig("gptq", bits, group_size, desc_act=desc_act, sym=sym)
        offset = zero_point_offset(checkpoint_format)
    except ValueError as e:
        raise GPTQFormatError(f"quantize_gptq_rtn: {e}") from None
    w = np.asarray(weight)
    if w.ndim != 2 or w.dtype.kind != "f":
        raise GPTQFormatError(
            f"quantize_gptq_rtn: weight must be a 2-D float array [N, K], "
            f"got {w.dtype} {list(w.shape)}"
        )
    if not np.all(np.isfinite(w)):
        raise GPTQFormatError("quantize_gptq_rtn: weight contains NaN or infinity")
    n, k = w.shape
    try:
        expected_tensor_specs(k, n, config)
    except ValueError as e:
        raise GPTQFormatError(f"quantize_gptq_rtn: {e}") from None
    gs = config.effective_group_size(k)
    groups = k // gs
    order = _column_order(k, desc_act, perm, seed)
    g_idx = act_order_g_idx(order, gs)

    w64 = w.astype(np.float64)
    blocks = w64[:, order].reshape(n, groups, gs)
    maxq = (1 << bits) - 1
    if sym:
        amax = np.abs(blocks).max(axis=2)
        amax[amax == 0] = 1.0
        s16 = _fp16_at_least(2.0 * amax / maxq)
        zero = np.full((n, groups), 1 << (bits - 1), dtype=np.int64)
    else:
        lo = np.minimum(blocks.min(axis=2), 0.0)
        hi = np.maximum(blocks.max(axis=2), 0.0)
        flat = (lo == 0) & (hi == 0)
        lo[flat], hi[flat] = -1.0, 1.0
        s16 = _fp16_at_least((hi - lo) / maxq)
        zero = np.clip(np.rint(-lo / s16.astype(np.float64)), 0, maxq).astype(np.int64)
        if offset == 1:
            unstorable = zero == 0
            s16[unstorable] = _fp16_at_least(hi[unstorable] / (maxq - 1))
            zero[unstorable] = 1

    scale_of = s16.astype(np.float64)[:, g_idx]  # [N, K], per weight
    q = np.clip(np.rint(w64 / scale_of) + zero[:, g_idx], 0, maxq).astype(np.int32)
    stored_zero = (zero - offset).astype(np.int32)  # [N, G]
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (n,) or bias.dtype.kind != "f":
            raise GPTQFormatError(
                f"quantize_gptq_rtn: bias must be a float array [{n}], "
                f"got {bias.dtype} {list(bias.shape)}"
            )
        bias = bias.astype(np.float16)
    return GPTQLinear(
        name=name,
        qweight=pack_qweight(q.T, bits),
        qzeros=pack_qzeros(stored_zero.T, bits),
        scales=np.ascontiguousarray(s16.T),
        g_idx=g_idx,
        bias=bias,
        config=config,
        checkpoint_format=checkpoint_format,
    )
