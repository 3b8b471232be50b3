"""Q3_K and Q6_K: super-blocks of 256 with 16 signed sub-block scales and no min.

Each function reproduces ggml's ``quantize_row_qN_K_ref`` byte for byte on
float32 blocks ``[B, 256]`` and returns the packed blocks ``uint8 [B, bytes]``.
"""

from __future__ import annotations

import numpy as np

from .block_layout import (
    block_order,
    element_major,
    fp16_bytes,
    pack_2bit_quarters,
    pack_bit_planes,
)
from .c_semantics import (
    F32,
    fp16_bits,
    nearest_int,
    running_abs_max,
    wrap_int8,
)
from .scale_search import GROUP_MAX_EPS, make_q3_quants, make_qx_quants


def _requantize_signed(x: np.ndarray, levels: np.ndarray, step: np.ndarray, nmax: int) -> None:
    """``L = clamp(nearest_int(x / d), -nmax, nmax - 1) + nmax`` wherever d != 0.

    x, levels: [16, S]; step (d): [S]. Updates levels in place (a NaN d
    counts as non-zero, like C's ``if (!d) continue``).
    """
    fresh = nearest_int(x / step)
    np.minimum(fresh, nmax - 1, out=fresh)
    np.maximum(fresh, -nmax, out=fresh)
    fresh += nmax
    np.copyto(levels, fresh, where=step != 0)


def quantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q6_K_ref``: ql[128], qh[64], int8 scales[16], d (210 bytes)."""
    n_blocks = blocks.shape[0]
    x = element_major(blocks, 16)
    scales, levels = make_qx_quants(x, 32)

    scales = scales.reshape(n_blocks, 16)
    max_abs_scale, max_scale = running_abs_max(scales.T)
    iscale = F32(-128) / max_scale
    d = fp16_bits(F32(1) / iscale)
    q_scales = wrap_int8(np.minimum(nearest_int(iscale[:, None] * scales), 127))
    step = (d.astype(F32)[:, None] * q_scales.astype(F32)).reshape(-1)
    _requantize_signed(x, levels, step, 32)

    levels = block_order(levels, n_blocks).reshape(n_blocks, 2, 4, 32)
    low = levels & np.uint8(0x0F)
    high = levels >> np.uint8(4)
    out = np.empty((n_blocks, 210), dtype=np.uint8)
    # Half h: ql[64h + l] = q(128h + l) | q(128h + 64 + l) << 4,
    #         ql[64h + 32 + l] = q(128h + 32 + l) | q(128h + 96 + l) << 4.
    out[:, 0:128] = (low[:, :, 0:2] | (low[:, :, 2:4] << np.uint8(4))).reshape(n_blocks, 128)
    # qh packs the high 2 bits as Q2_K/Q3_K pack their 2-bit codes.
    out[:, 128:192] = pack_2bit_quarters(high.reshape(n_blocks, 256))
    out[:, 192:208] = q_scales.astype(np.int8).view(np.uint8)
    out[:, 208:210] = fp16_bytes(d)
    # ggml zeroes the whole block when no sub-block has a usable scale.
    out[max_abs_scale < GROUP_MAX_EPS] = 0
    return out


def quantize_q3_k(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q3_K_ref``: hmask[32], qs[64], scales[12], d (110 bytes)."""
    n_blocks = blocks.shape[0]
    x = element_major(blocks, 16)
    scales, levels = make_q3_quants(x, 4)

    scales = scales.reshape(n_blocks, 16)
    _, max_scale = running_abs_max(scales.T)
    has_scale = max_scale != 0
    iscale = F32(-32) / max_scale
    # `int8_t l = nearest_int(...)` wraps before the clamp to -32..31.
    biased = np.clip(wrap_int8(nearest_int(iscale[:, None] * scales)), -32, 31) + 32
    d = fp16_bits(np.where(has_scale, F32(1) / iscale, F32(0)))
    # Without a scale ggml leaves the 12 scale bytes zero (decoding to -32).
    biased = np.where(has_scale[:, None], biased, 0).astype(np.uint8)
    step = (d.astype(F32)[:, None] * (biased.astype(F32) - F32(32))).reshape(-1)
    _requantize_signed(x, levels, step, 4)

    packed_scales = np.empty((n_blocks, 12), dtype=np.uint8)
    # Low nibbles: scale j (j < 8) in byte j, scale j + 8 in its high half;
    # bits 4-5 of scale 4q + m at bits 2q of byte 8 + m.
    packed_scales[:, 0:8] = (biased[:, 0:8] & np.uint8(0x0F)) | (biased[:, 8:16] << np.uint8(4))
    top = (biased >> np.uint8(4)).reshape(n_blocks, 4, 4)
    packed_scales[:, 8:12] = top[:, 0] | (top[:, 1] << np.uint8(2))
    packed_scales[:, 8:12] |= top[:, 2] << np.uint8(4)
    packed_scales[:, 8:12] |= top[:, 3] << np.uint8(6)

    levels = block_order(levels, n_blocks)
    out = np.empty((n_blocks, 110), dtype=np.uint8)
    out[:, 0:32] = pack_bit_planes(levels >> np.uint8(2))
    out[:, 32:96] = pack_2bit_quarters(levels & np.uint8(3))
    out[:, 96:108] = packed_scales
    out[:, 108:110] = fp16_bytes(d)
    return out
