"""Moving data between block order and the layouts the quantizers compute in.

Blocks arrive as float32 ``[B, elements_per_block]`` (row-major, element order
of the weight row). The scale searches want sub-blocks element-major
(``[n, S]``, see ``scale_search``); the packers want integer levels back in
block order, then squeezed into the bit fields of each GGUF block.
"""

from __future__ import annotations

import numpy as np


def element_major(blocks: np.ndarray, sub_block: int) -> np.ndarray:
    """[B, E] blocks -> contiguous [sub_block, B * E // sub_block].

    Column ``s = b * (E // sub_block) + j`` holds sub-block j of block b.
    """
    return np.ascontiguousarray(blocks.reshape(-1, sub_block).T)


def block_order(levels: np.ndarray, n_blocks: int) -> np.ndarray:
    """Inverse of ``element_major`` for integer levels: [n, S] -> uint8 [B, E]."""
    return levels.T.reshape(n_blocks, -1).astype(np.uint8)


def fp16_bytes(values: np.ndarray) -> np.ndarray:
    """Little-endian float16 [B] -> its two stored bytes, uint8 [B, 2]."""
    return values.astype("<f2").view(np.uint8).reshape(-1, 2)


def pack_bit_planes(bits: np.ndarray) -> np.ndarray:
    """Bit c of byte m is element 32c + m: uint8 [B, 256] of 0/1 -> [B, 32].

    The layout of Q5_K's qh and Q3_K's hmask.
    """
    planes = bits.reshape(bits.shape[0], 8, 32)
    packed = np.zeros((bits.shape[0], 32), dtype=np.uint8)
    for plane in range(8):
        packed |= planes[:, plane] << np.uint8(plane)
    return packed


def pack_2bit_quarters(levels: np.ndarray) -> np.ndarray:
    """Q2_K/Q3_K ``qs``: in each 128-element half h, byte 32h + l holds
    elements 128h + 32g + l (g = 0..3) at bits 2g. uint8 [B, 256] in 0..3 -> [B, 64].
    """
    quarters = levels.reshape(levels.shape[0], 2, 4, 32)
    packed = quarters[:, :, 0] | (quarters[:, :, 1] << np.uint8(2))
    packed |= quarters[:, :, 2] << np.uint8(4)
    packed |= quarters[:, :, 3] << np.uint8(6)
    return packed.reshape(levels.shape[0], 64)


def pack_nibble_pairs(levels: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K ``qs``: in each 64-element chunk c, byte 32c + l holds element
    64c + l in its low nibble and 64c + 32 + l in its high nibble.
    uint8 [B, 256] (only the low 4 bits are used) -> [B, 128].
    """
    chunks = levels.reshape(levels.shape[0], 4, 2, 32) & np.uint8(0x0F)
    return (chunks[:, :, 0] | (chunks[:, :, 1] << np.uint8(4))).reshape(levels.shape[0], 128)


def pack_k_scales(scales: np.ndarray, mins: np.ndarray) -> np.ndarray:
    """The 12-byte 6-bit scale/min field of Q4_K and Q5_K (get_scale_min_k4's inverse).

    scales, mins: uint8 [B, 8] in 0..63. Bytes 0-3 hold scales 0-3 plus the
    top two bits of scales 4-7, bytes 4-7 the same for mins, bytes 8-11 the
    low nibbles of scale 4-7 (low) and min 4-7 (high).
    """
    packed = np.empty((scales.shape[0], 12), dtype=np.uint8)
    packed[:, 0:4] = scales[:, 0:4] | ((scales[:, 4:8] >> np.uint8(4)) << np.uint8(6))
    packed[:, 4:8] = mins[:, 0:4] | ((mins[:, 4:8] >> np.uint8(4)) << np.uint8(6))
    packed[:, 8:12] = (scales[:, 4:8] & np.uint8(0x0F)) | (mins[:, 4:8] << np.uint8(4))
    return packed
