"""Bit packing of GPTQ integer codes into 32-bit words (docs/gptq.md).

GPTQ stores b-bit codes as one little-endian bit stream per column of a
32-bit word array: code j of the stream occupies bits b*j .. b*j+b-1, where
bit i of the stream is bit (i % 32) of word i // 32 (LSB first). For b in
{2, 4, 8} every word holds exactly 32/b codes; for b = 3 a run of 32 codes
fills 3 words and codes 10 and 21 straddle a word boundary (AutoGPTQ's
``QuantLinear.pack`` writes exactly this stream). qweight packs along K (its
rows), qzeros along N (its columns). Words are stored as int32 but read as
unsigned.
"""

from __future__ import annotations

import numpy as np

from quantir.dialects.encoding import GPTQ_BITS
from quantir.dialects.encoding import codes_per_run as _codes_per_run

__all__ = [
    "codes_per_run",
    "pack_codes",
    "pack_qweight",
    "pack_qzeros",
    "unpack_codes",
    "unpack_qweight",
    "unpack_qzeros",
]


def _check_bits(bits: object) -> int:
    if type(bits) is not int or bits not in GPTQ_BITS:
        raise ValueError(f"GPTQ bits must be one of {list(GPTQ_BITS)}, got {bits!r}")
    return bits


def codes_per_run(bits: int) -> tuple[int, int]:
    """(codes, words) of the shortest run of codes that fills whole words.

    (16, 1) for 2 bits, (32, 3) for 3 bits, (8, 1) for 4 bits, (4, 1) for 8; the
    rule is the dialect's, this checks `bits` first.
    """
    return _codes_per_run(_check_bits(bits))


def _slots(bits: int) -> list[tuple[int, int]]:
    """(word within the run, bit offset in that word) of each code of a run."""
    codes, _ = codes_per_run(bits)
    return [(bits * j // 32, bits * j % 32) for j in range(codes)]


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack integer codes [L, M] in [0, 2**bits) along axis 0 into int32 [L*bits/32, M]."""
    bits = _check_bits(bits)
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"GPTQ codes to pack must be 2-D, got shape {list(codes.shape)}")
    if codes.dtype.kind not in "iu":
        raise ValueError(f"GPTQ codes to pack must be integers, got dtype {codes.dtype}")
    length, cols = codes.shape
    run, run_words = codes_per_run(bits)
    if length % run:
        raise ValueError(
            f"GPTQ {bits}-bit packing needs a multiple of {run} codes along the packed "
            f"axis (length times bits a multiple of 32), got {length}"
        )
    if codes.size and (codes.min() < 0 or codes.max() >= 1 << bits):
        raise ValueError(
            f"GPTQ {bits}-bit codes must lie in [0, {(1 << bits) - 1}], got values in "
            f"[{codes.min()}, {codes.max()}]"
        )
    # uint64 lanes so that a code shifted past bit 31 keeps its high bits for
    # the next word instead of being lost or sign-extended.
    src = codes.astype(np.uint64).reshape(length // run, run, cols)
    words = np.zeros((length // run, run_words, cols), dtype=np.uint64)
    for j, (w, off) in enumerate(_slots(bits)):
        value = src[:, j, :]
        words[:, w, :] |= (value << np.uint64(off)) & np.uint64(0xFFFFFFFF)
        if off + bits > 32:  # the code straddles into the next word
            words[:, w + 1, :] |= value >> np.uint64(32 - off)
    packed = words.reshape(length // run * run_words, cols).astype(np.uint32)
    return packed.view(np.int32)


def unpack_codes(words: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: int32 words [R, M] -> int32 codes [R*32/bits, M]."""
    bits = _check_bits(bits)
    words = np.asarray(words)
    if words.ndim != 2:
        raise ValueError(f"GPTQ packed words must be 2-D, got shape {list(words.shape)}")
    if words.dtype not in (np.dtype(np.int32), np.dtype(np.uint32)):
        raise ValueError(f"GPTQ packed words must be int32, got dtype {words.dtype}")
    rows, cols = words.shape
    run, run_words = codes_per_run(bits)
    if rows % run_words:
        raise ValueError(
            f"GPTQ {bits}-bit codes come in runs of {run_words} words; "
            f"{rows} words along the packed axis is not a multiple of {run_words}"
        )
    # Read as unsigned (the sign bit is just the top bit of the stream).
    src = np.ascontiguousarray(words).view(np.uint32).astype(np.uint64)
    src = src.reshape(rows // run_words, run_words, cols)
    mask = np.uint64((1 << bits) - 1)
    codes = np.empty((rows // run_words, run, cols), dtype=np.int32)
    for j, (w, off) in enumerate(_slots(bits)):
        value = src[:, w, :] >> np.uint64(off)
        if off + bits > 32:
            value |= src[:, w + 1, :] << np.uint64(32 - off)
        codes[:, j, :] = (value & mask).astype(np.int32)
    return codes.reshape(rows // run_words * run, cols)


def pack_qweight(q: np.ndarray, bits: int) -> np.ndarray:
    """Integer codes q [K, N] -> qweight int32 [K*bits/32, N] (packed along K)."""
    return pack_codes(q, bits)


def unpack_qweight(qweight: np.ndarray, bits: int) -> np.ndarray:
    """qweight int32 [K*bits/32, N] -> codes int32 [K, N]."""
    return unpack_codes(qweight, bits)


def pack_qzeros(zeros: np.ndarray, bits: int) -> np.ndarray:
    """STORED zero points [G, N] -> qzeros int32 [G, N*bits/32] (packed along N)."""
    zeros = np.asarray(zeros)
    if zeros.ndim != 2:
        raise ValueError(f"GPTQ zero points to pack must be 2-D, got shape {list(zeros.shape)}")
    return np.ascontiguousarray(pack_codes(zeros.T, bits).T)


def unpack_qzeros(qzeros: np.ndarray, bits: int) -> np.ndarray:
    """qzeros int32 [G, N*bits/32] -> STORED zero points int32 [G, N].

    These are the stored values; add ``zero_point_offset(checkpoint_format)``
    (1 for the v1 "gptq" format) to get the zero points of the formula.
    """
    qzeros = np.asarray(qzeros)
    if qzeros.ndim != 2:
        raise ValueError(f"GPTQ qzeros must be 2-D, got shape {list(qzeros.shape)}")
    return np.ascontiguousarray(unpack_codes(qzeros.T, bits).T)
