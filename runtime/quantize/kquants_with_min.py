"""Q2_K, Q4_K and Q5_K: super-blocks of 256 whose sub-blocks carry a scale and a min.

Each function reproduces ggml's ``quantize_row_qN_K_ref`` byte for byte on
float32 blocks ``[B, 256]`` and returns the packed blocks ``uint8 [B, bytes]``.
The shared recipe: make_qkx2_quants per sub-block, quantize the sub-block
scales and mins against the super-block maxima, store those as fp16, then
re-quantize every element with the fp16-rounded values (sub-blocks whose
quantized scale comes out 0 keep their first-pass levels, as in C).
"""

from __future__ import annotations

import numpy as np

from .block_layout import (
    block_order,
    element_major,
    fp16_bytes,
    pack_2bit_quarters,
    pack_bit_planes,
    pack_k_scales,
    pack_nibble_pairs,
)
from .c_semantics import (
    F32,
    fp16_bits,
    nearest_int,
    running_max_from_zero,
    sequential_sum,
)
from .scale_search import make_qkx2_quants


def _requantize(
    x: np.ndarray,
    levels: np.ndarray,
    step: np.ndarray,
    offset: np.ndarray,
    nmax: int,
) -> None:
    """Second pass: ``L = clamp(nearest_int((x + dm) / d), 0, nmax)`` wherever d != 0.

    x, levels: [n, S]; step (d), offset (dm): [S]. Updates levels in place;
    a NaN d counts as non-zero, as C's ``if (!d) continue`` treats it.
    """
    fresh = nearest_int((x + offset) / step)
    np.minimum(fresh, nmax, out=fresh)
    np.maximum(fresh, 0, out=fresh)
    np.copyto(levels, fresh, where=step != 0)


def _quantize_8x32(blocks: np.ndarray, nmax: int, rmin: float, nstep: int):
    """The Q4_K / Q5_K pipeline up to the final levels.

    Returns (d fp16 [B], dmin fp16 [B], packed scales uint8 [B, 12],
    levels uint8 [B, 256] in 0..nmax).
    """
    n_blocks = blocks.shape[0]
    x = element_major(blocks, 32)
    # Element weights: RMS of the sub-block plus the element's magnitude.
    av_x = np.sqrt(sequential_sum(x * x) / F32(32))
    weights = av_x + np.abs(x)
    scales, mins, levels = make_qkx2_quants(x, weights, nmax, rmin, 0.1, nstep, use_mad=False)

    scales = scales.reshape(n_blocks, 8)
    mins = mins.reshape(n_blocks, 8)
    max_scale = running_max_from_zero(scales.T)
    max_min = running_max_from_zero(mins.T)
    inv_scale = np.where(max_scale > 0, F32(63) / max_scale, F32(0))
    inv_min = np.where(max_min > 0, F32(63) / max_min, F32(0))
    # C stores nearest_int's result in a uint8_t (wrapping) before MIN(63, .).
    q_scales = np.minimum(nearest_int(inv_scale[:, None] * scales) & 0xFF, 63).astype(np.uint8)
    q_mins = np.minimum(nearest_int(inv_min[:, None] * mins) & 0xFF, 63).astype(np.uint8)

    d = fp16_bits(max_scale / F32(63))
    dmin = fp16_bits(max_min / F32(63))
    # The 6-bit fields round-trip exactly, so the values ggml decodes back
    # with get_scale_min_k4 are q_scales / q_mins themselves.
    step = (d.astype(F32)[:, None] * q_scales.astype(F32)).reshape(-1)
    offset = (dmin.astype(F32)[:, None] * q_mins.astype(F32)).reshape(-1)
    _requantize(x, levels, step, offset, nmax)
    return d, dmin, pack_k_scales(q_scales, q_mins), block_order(levels, n_blocks)


def quantize_q4_k(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q4_K_ref``: d, dmin, scales[12], qs[128] (144 bytes)."""
    d, dmin, scales, levels = _quantize_8x32(blocks, nmax=15, rmin=-1.0, nstep=20)
    out = np.empty((blocks.shape[0], 144), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(d)
    out[:, 2:4] = fp16_bytes(dmin)
    out[:, 4:16] = scales
    out[:, 16:144] = pack_nibble_pairs(levels)
    return out


def quantize_q5_k(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q5_K_ref``: d, dmin, scales[12], qh[32], qs[128] (176 bytes)."""
    d, dmin, scales, levels = _quantize_8x32(blocks, nmax=31, rmin=-0.5, nstep=15)
    out = np.empty((blocks.shape[0], 176), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(d)
    out[:, 2:4] = fp16_bytes(dmin)
    out[:, 4:16] = scales
    out[:, 16:48] = pack_bit_planes(levels >> np.uint8(4))
    out[:, 48:176] = pack_nibble_pairs(levels)
    return out


def quantize_q2_k(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q2_K_ref``: scales[16], qs[64], d, dmin (84 bytes).

    16 sub-blocks of 16; each scale byte holds the 4-bit scale (low nibble)
    and 4-bit min (high nibble).
    """
    n_blocks = blocks.shape[0]
    x = element_major(blocks, 16)
    scales, mins, levels = make_qkx2_quants(x, np.abs(x), 3, -0.5, 0.1, 15, use_mad=True)

    scales = scales.reshape(n_blocks, 16)
    mins = mins.reshape(n_blocks, 16)
    max_scale = running_max_from_zero(scales.T)
    max_min = running_max_from_zero(mins.T)
    has_scale = max_scale > 0
    has_min = max_min > 0
    inv_scale = F32(15) / max_scale
    inv_min = F32(15) / max_min
    q_scales = np.where(has_scale[:, None], nearest_int(inv_scale[:, None] * scales), 0)
    q_mins = np.where(has_min[:, None], nearest_int(inv_min[:, None] * mins), 0)
    d = fp16_bits(np.where(has_scale, max_scale / F32(15), F32(0)))
    dmin = fp16_bits(np.where(has_min, max_min / F32(15), F32(0)))
    # `scales[j] = l; scales[j] |= (l_min << 4);` into a uint8_t: keep the low byte.
    packed_scales = ((q_scales & 0xFF) | ((q_mins << 4) & 0xFF)).astype(np.uint8)

    step = (d.astype(F32)[:, None] * (packed_scales & np.uint8(0x0F)).astype(F32)).reshape(-1)
    offset = (dmin.astype(F32)[:, None] * (packed_scales >> np.uint8(4)).astype(F32)).reshape(-1)
    _requantize(x, levels, step, offset, 3)

    out = np.empty((n_blocks, 84), dtype=np.uint8)
    out[:, 0:16] = packed_scales
    out[:, 16:80] = pack_2bit_quarters(block_order(levels, n_blocks))
    out[:, 80:82] = fp16_bytes(d)
    out[:, 82:84] = fp16_bytes(dmin)
    return out
