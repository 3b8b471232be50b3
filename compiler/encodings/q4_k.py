"""Q4_K: 256 weights in 144 bytes: fp16 d, fp16 dmin, 12 bytes of packed 6-bit
scales and mins for 8 sub-blocks of 32, then 128 bytes of 4-bit codes.

Chunk c (0..3) covers elements 64c..64c+63: the low nibbles of qs[32c+l] are
elements 64c+l (sub-block 2c), the high nibbles 64c+32+l (sub-block 2c+1).
value = (d * sc_j) * q - (dmin * m_j).
"""

from xdsl.dialects.builtin import VectorType

from quantir.compiler.encodings.base import (
    BlockLayout,
    ElementSet,
    LaneGroup,
    ScaleVectors,
    SubBlockScale,
)
from quantir.dialects.encoding import QuantizationEncoding

SCALES, QS = 4, 16


def six_bit_scale_min(e, blk, at: int, j: int):
    """The 6-bit (scale, min) codes of sub-block j from the 12 bytes at `at` (i8)."""
    if j < 4:
        return e.andi(blk.u8(at + j), 63), e.andi(blk.u8(at + j + 4), 63)
    sc = e.ori(e.andi(blk.u8(at + j + 4), 15), e.shli(e.shrui(blk.u8(at + j - 4), 6), 4))
    m = e.ori(e.shrui(blk.u8(at + j + 4), 4), e.shli(e.shrui(blk.u8(at + j), 6), 4))
    return sc, m


def six_bit_scale_min_vectors(e, blk, at: int):
    """All eight (scale, min) codes as two vector<8xi8>, by the same formulas."""
    s = blk.bytes(at, 16)  # the 12 scale bytes and 4 bytes after them (still in the block)
    low = e.shuffle(s, s, [0, 1, 2, 3, 8, 9, 10, 11])  # s[j] for j<4, s[j+4] for j>=4
    mins = e.shuffle(s, s, [4, 5, 6, 7, 8, 9, 10, 11])  # s[j+4]
    sc_hi = e.shuffle(s, s, [0, 0, 0, 0, 0, 1, 2, 3])  # s[j-4] (used for j>=4)
    m_hi = e.shuffle(s, s, [0, 0, 0, 0, 4, 5, 6, 7])  # s[j] (used for j>=4)
    sc_lo4 = e.andi(low, 63)
    sc_hi4 = e.ori(e.andi(low, 15), e.shli(e.shrui(sc_hi, 6), 4))
    m_lo4 = e.andi(mins, 63)
    m_hi4 = e.ori(e.shrui(mins, 4), e.shli(e.shrui(m_hi, 6), 4))
    take = [0, 1, 2, 3, 12, 13, 14, 15]  # lanes 0-3 from the first operand, 4-7 the second
    return e.shuffle(sc_lo4, sc_hi4, take), e.shuffle(m_lo4, m_hi4, take)


class Q4_KLayout(BlockLayout):
    encoding = QuantizationEncoding.Q4_K
    code_bits = 4
    lanes = 32
    gpu_lane_width = 16  # one 16-lane run per GPU thread: wide loads, fewer scale decodes
    sub_blocks = 8
    fp16_fields = {"d": 0, "dmin": 2}
    has_offsets = True
    groups = tuple(
        LaneGroup(
            (QS + 32 * c,),
            (
                ElementSet(64 * c, 2 * c, lambda e, blk, s: e.andi(s[0], 15)),
                ElementSet(64 * c + 32, 2 * c + 1, lambda e, blk, s: e.shrui(s[0], 4)),
            ),
        )
        for c in range(4)
    )

    def scale(self, blk, hdr, j):
        e = blk.e
        sc, m = six_bit_scale_min(e, blk, SCALES, j)
        return SubBlockScale(e.mulf(hdr["d"], e.uitofp(sc)), e.mulf(hdr["dmin"], e.uitofp(m)))

    def scale_vectors(self, blk, hdr):
        e = blk.e
        sc, m = six_bit_scale_min_vectors(e, blk, SCALES)
        v = VectorType(hdr["d"].type, [8])
        scales = e.mulf(e.broadcast(hdr["d"], v), e.uitofp(sc))
        mins = e.mulf(e.broadcast(hdr["dmin"], v), e.uitofp(m))
        return ScaleVectors(scales, mins)
