"""ggml's per-sub-block scale searches (make_qkx2_quants, make_qx_quants, make_q3_quants).

Every function works on many sub-blocks at once, laid out ELEMENT-MAJOR:
``x[i, s]`` is element ``i`` of sub-block ``s``. ggml's loops over the
elements of one sub-block then become loops over the rows of ``x``, each a
contiguous vector over all sub-blocks, which keeps the float32 accumulation
order of the C code (one element at a time, left to right) while doing the
arithmetic for every sub-block in one numpy call.

Only the paths ggml's reference quantizers take are implemented (no
importance matrix). Sub-blocks for which C returns early (all zero, flat) are
computed along with the others and their results overwritten with the early
return values, so the garbage they produce never leaks into the output.
"""

from __future__ import annotations

import numpy as np

from .c_semantics import (
    F32,
    nearest_int,
    running_abs_max,
    running_min_max,
    sequential_sum,
)

# ggml's GROUP_MAX_EPS: a sub-block whose largest magnitude is below it is all zero.
GROUP_MAX_EPS = F32(1e-15)


def _clamped_levels(scaled: np.ndarray, low: int, high: int) -> np.ndarray:
    """``MAX(low, MIN(high, nearest_int(scaled)))`` as int32."""
    levels = nearest_int(scaled)
    np.minimum(levels, high, out=levels)
    np.maximum(levels, low, out=levels)
    return levels


def make_qkx2_quants(
    x: np.ndarray,
    weights: np.ndarray,
    nmax: int,
    rmin: float,
    rdelta: float,
    nstep: int,
    use_mad: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric (scale, min) search of ggml's ``make_qkx2_quants``.

    x, weights: float32 [n, S]. Returns (scale [S], the_min [S], L [n, S]
    int32 in 0..nmax), where element i of sub-block s is approximated by
    ``scale * L - the_min``. As in C, ``min`` is replaced inside the search
    loop whenever a candidate improves the weighted error, and later
    candidates are scaled against the updated min.
    """
    nmax_f = F32(nmax)
    low, high = running_min_max(x)

    sum_w = weights[0].copy()
    sum_x = sum_w * x[0]
    for i in range(1, x.shape[0]):
        np.add(sum_w, weights[i], out=sum_w)
        np.add(sum_x, weights[i] * x[i], out=sum_x)

    low[low > 0] = F32(0)
    flat = high == low

    def weighted_error(scale: np.ndarray, minimum: np.ndarray, levels_f: np.ndarray) -> np.ndarray:
        diff = scale * levels_f + minimum - x
        diff = np.abs(diff, out=diff) if use_mad else np.multiply(diff, diff, out=diff)
        return sequential_sum(np.multiply(weights, diff, out=diff))

    iscale = nmax_f / (high - low)
    scale = F32(1) / iscale
    levels = _clamped_levels(iscale * (x - low), 0, nmax)
    best_error = weighted_error(scale, low, levels.astype(F32))
    # The winning levels are not copied at every improvement (a masked copy
    # of [n, S] is slow on random masks): the (iscale, min) that produced
    # them is remembered and they are recomputed once at the end, which
    # yields the very same integers.
    levels_iscale = iscale
    levels_low = low.copy()

    # With nstep < 1 ggml returns the first-pass result without searching.
    for step in range(nstep + 1) if nstep >= 1 else ():
        candidate = F32(rmin) + F32(rdelta) * F32(step) + nmax_f
        iscale = candidate / (high - low)
        aux_f = _clamped_levels(iscale * (x - low), 0, nmax).astype(F32)
        wl = weights * aux_f
        sum_l = sequential_sum(wl)
        sum_l2 = sequential_sum(wl * aux_f)
        sum_xl = sequential_sum(np.multiply(wl, x, out=wl))

        det = sum_w * sum_l2 - sum_l * sum_l
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
        positive_min = this_min > 0
        this_min[positive_min] = F32(0)
        this_scale = np.where(positive_min, sum_xl / sum_l2, this_scale)

        cur_error = weighted_error(this_scale, this_min, aux_f)
        better = (det > 0) & (cur_error < best_error) & ~flat
        levels_iscale = np.where(better, iscale, levels_iscale)
        levels_low = np.where(better, low, levels_low)
        best_error = np.where(better, cur_error, best_error)
        scale = np.where(better, this_scale, scale)
        low = np.where(better, this_min, low)

    if nstep >= 1:
        levels = _clamped_levels(levels_iscale * (x - levels_low), 0, nmax)
    scale[flat] = F32(0)
    levels[:, flat] = 0
    return scale, -low, levels


def make_qx_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric scale search of ggml's ``make_qx_quants`` with rmse_type 1, no imatrix.

    x: float32 [n, S]; the weight of each element is x*x. Returns
    (scale [S], L [n, S] int32 in 0..2*nmax-1, stored with the +nmax offset
    as ggml stores it). All-zero sub-blocks get scale 0 and L 0.
    """
    amax, signed_max = running_abs_max(x)
    all_zero = amax < GROUP_MAX_EPS
    nmax_f = F32(nmax)
    weights = x * x
    weights_x = weights * x

    def sums(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        levels_f = levels.astype(F32)
        sum_lx = sequential_sum(weights_x * levels_f)
        sum_l2 = sequential_sum(weights * levels_f * levels_f)
        return sum_lx, sum_l2

    # As in make_qkx2_quants, the winning levels are recomputed at the end
    # from the iscale that produced them instead of copied at each improvement.
    levels_iscale = F32(-nmax) / signed_max
    sum_lx, sum_l2 = sums(_clamped_levels(levels_iscale * x, -nmax, nmax - 1))
    scale = np.where(sum_l2 != 0, sum_lx / sum_l2, F32(0))
    best = scale * sum_lx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(nmax_f + F32(0.1) * F32(step)) / signed_max
        sum_lx, sum_l2 = sums(_clamped_levels(iscale * x, -nmax, nmax - 1))
        better = (sum_l2 > 0) & (sum_lx * sum_lx > best * sum_l2)
        levels_iscale = np.where(better, iscale, levels_iscale)
        scale = np.where(better, sum_lx / sum_l2, scale)
        best = np.where(better, scale * sum_lx, best)

    levels = _clamped_levels(levels_iscale * x, -nmax, nmax - 1)
    levels += nmax
    scale[all_zero] = F32(0)
    levels[:, all_zero] = 0
    return scale, levels


def make_q3_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """ggml's ``make_q3_quants`` with do_rmse (the Q3_K reference path).

    x: float32 [n, S]. Returns (scale [S], L [n, S] int32 in 0..2*nmax-1).
    The refinement visits elements one at a time and each accepted change
    alters the running sums seen by the next element, so the element loop
    stays sequential (vectorized across sub-blocks). ggml stops after a pass
    without changes; such a pass leaves the state untouched, so running all
    five passes gives the same result for every sub-block.
    """
    amax, signed_max = running_abs_max(x)
    all_zero = amax < GROUP_MAX_EPS
    weights = x * x
    weights_x = weights * x

    levels = _clamped_levels((F32(-nmax) / signed_max) * x, -nmax, nmax - 1)
    levels_f = levels.astype(F32)
    sum_lx = sequential_sum(weights_x * levels_f)
    sum_l2 = sequential_sum(weights * levels_f * levels_f)
    for _ in range(5):
        for i in range(x.shape[0]):
            current = levels_f[i]
            slx_without = sum_lx - weights_x[i] * current
            sl2_without = sum_l2 - weights[i] * current * current
            proposed = _clamped_levels(x[i] * sl2_without / slx_without, -nmax, nmax - 1)
            proposed_f = proposed.astype(F32)
            slx = slx_without + weights_x[i] * proposed_f
            sl2 = sl2_without + weights[i] * proposed_f * proposed_f
            accept = (
                (slx_without > 0)
                & (proposed != levels[i])
                & (sl2 > 0)
                & (slx * slx * sum_l2 > sum_lx * sum_lx * sl2)
            )
            np.copyto(levels[i], proposed, where=accept)
            np.copyto(levels_f[i], proposed_f, where=accept)
            np.copyto(sum_lx, slx, where=accept)
            np.copyto(sum_l2, sl2, where=accept)
    scale = np.where(sum_l2 > 0, sum_lx / sum_l2, F32(0))

    levels += nmax
    scale[all_zero] = F32(0)
    levels[:, all_zero] = 0
    return scale, levels
