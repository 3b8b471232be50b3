"""The 32-element formats (ggml's "legacy" quants): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.

Each function reproduces ggml's ``quantize_row_X_ref`` byte for byte on float32
blocks ``[B, 32]`` and returns ``uint8 [B, bytes]``. gguf-py's
``gguf.quants.quantize`` agrees with them on ordinary data; these versions
additionally follow C where gguf-py's numpy shortcuts differ from it: the
sign of a zero extremum (C keeps the first element of equal value it meets)
and float -> integer conversions of inf/NaN, which only arise when a block's
scale underflows (C leaves those undefined; x86-64 builds of ggml, which we
match, produce INT_MIN and keep its low byte).
"""

from __future__ import annotations

import numpy as np

from .block_layout import element_major, fp16_bytes
from .c_semantics import F32, c_float_to_int8, fp16_bits, roundf


def _extremes(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of each block as numpy finds them, shape [B, 1].

    Reducing the element-major copy is several times faster than reducing
    along 32-element rows. The VALUES are the ones C finds; which of several
    equal values (-0.0 vs +0.0) is returned is not, and callers fix that up
    where it matters.
    """
    element_rows = element_major(blocks, blocks.shape[1])
    return element_rows.min(axis=0)[:, None], element_rows.max(axis=0)[:, None]


def _first_equal(blocks: np.ndarray, extreme: np.ndarray, index_of) -> None:
    """Replace extreme[b] by the first element of block b equal to it (C's
    strict running comparison keeps the first), for the blocks where the
    choice can matter: extreme zeros, whose sign C takes from the data.
    ``index_of`` is ``np.argmin`` or ``np.argmax`` (first occurrence)."""
    rows = np.flatnonzero(extreme[:, 0] == 0)
    if rows.size:
        subset = blocks[rows]
        first = index_of(subset, axis=1)
        extreme[rows, 0] = subset[np.arange(rows.size), first]


def _signed_abs_max(blocks: np.ndarray) -> np.ndarray:
    """``if (amax < fabsf(v)) { amax = fabsf(v); max = v; }`` from amax = max = 0, [B, 1].

    The winner is the max or the min, whichever is larger in magnitude; when
    they tie (+a and -a both present, or an all-zero block) the first
    occurrence decides, found on those few blocks only.
    """
    low, high = _extremes(blocks)
    signed = np.where(high > -low, high, low)
    ties = np.flatnonzero(high[:, 0] == -low[:, 0])
    if ties.size:
        subset = blocks[ties]
        first = np.abs(subset).argmax(axis=1)
        winner = subset[np.arange(ties.size), first]
        # All-zero block: the strict comparison never fires and max stays +0.0.
        signed[ties, 0] = np.where(winner == 0, F32(0), winner)
    return signed


def _inverse(d: np.ndarray) -> np.ndarray:
    """``d ? 1.0f/d : 0.0f``."""
    return np.where(d != 0, F32(1) / d, F32(0))


def _nibbles(levels: np.ndarray) -> np.ndarray:
    """``qs[j] = xi0; qs[j] |= xi1 << 4`` for j < 16 (xi already uint8-stored)."""
    return levels[:, :16] | (levels[:, 16:] << np.uint8(4))


def _fifth_bits(levels: np.ndarray) -> np.ndarray:
    """Q5's qh: bit j of a little-endian uint32 is bit 4 of level j -> uint8 [B, 4]."""
    bits = (levels >> np.uint8(4)) & np.uint8(1)
    return np.packbits(bits, axis=1, bitorder="little")


def quantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q4_0_ref``: d (fp16), qs[16] (18 bytes)."""
    d = _signed_abs_max(blocks) / F32(-8)
    scaled = blocks * _inverse(d) + F32(8.5)
    # MIN(15, (int8_t)(x + 8.5f)) stored into a uint8_t (same bits as the int8).
    levels = np.minimum(c_float_to_int8(scaled), 15).view(np.uint8)
    out = np.empty((blocks.shape[0], 18), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(fp16_bits(d[:, 0]))
    out[:, 2:18] = _nibbles(levels)
    return out


def quantize_q5_0(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q5_0_ref``: d, qh (uint32), qs[16] (22 bytes)."""
    d = _signed_abs_max(blocks) / F32(-16)
    scaled = blocks * _inverse(d) + F32(16.5)
    levels = np.minimum(c_float_to_int8(scaled), 31).view(np.uint8)
    out = np.empty((blocks.shape[0], 22), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(fp16_bits(d[:, 0]))
    out[:, 2:6] = _fifth_bits(levels)
    out[:, 6:22] = _nibbles(levels & np.uint8(0x0F))
    return out


def _min_and_step(blocks: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Q4_1/Q5_1: (min, d = (max - min) / nmax), min/max as C's running scan finds them.

    The sign of a zero extremum is stored (m) or changes d's sign bit
    ((-0) - (+0) = -0), so it follows C exactly.
    """
    low, high = _extremes(blocks)
    _first_equal(blocks, low, np.argmin)
    _first_equal(blocks, high, np.argmax)
    return low, (high - low) / F32(nmax)


def quantize_q4_1(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q4_1_ref``: d, m (fp16), qs[16] (20 bytes)."""
    low, d = _min_and_step(blocks, 15)
    scaled = (blocks - low) * _inverse(d) + F32(0.5)
    levels = np.minimum(c_float_to_int8(scaled), 15).view(np.uint8)
    out = np.empty((blocks.shape[0], 20), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(fp16_bits(d[:, 0]))
    out[:, 2:4] = fp16_bytes(fp16_bits(low[:, 0]))
    out[:, 4:20] = _nibbles(levels)
    return out


def quantize_q5_1(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q5_1_ref``: d, m, qh (uint32), qs[16] (24 bytes)."""
    low, d = _min_and_step(blocks, 31)
    scaled = (blocks - low) * _inverse(d) + F32(0.5)
    # (uint8_t)(x + 0.5f): no clamp in C.
    levels = c_float_to_int8(scaled).view(np.uint8)
    out = np.empty((blocks.shape[0], 24), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(fp16_bits(d[:, 0]))
    out[:, 2:4] = fp16_bytes(fp16_bits(low[:, 0]))
    out[:, 4:8] = _fifth_bits(levels)
    out[:, 8:24] = _nibbles(levels & np.uint8(0x0F))
    return out


def quantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    """``quantize_row_q8_0_ref``: d, int8 qs[32] (34 bytes)."""
    # MAX(amax, fabsf(v)) from amax = 0: the magnitudes are never -0.0.
    low, high = _extremes(blocks)
    d = np.maximum(np.abs(high), np.abs(low)) / F32(127)
    rounded = roundf(blocks * _inverse(d))
    out = np.empty((blocks.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = fp16_bytes(fp16_bits(d[:, 0]))
    out[:, 2:34] = c_float_to_int8(rounded).view(np.uint8)
    return out
