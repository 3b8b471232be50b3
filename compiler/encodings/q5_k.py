"""Q5_K: 256 weights in 176 bytes: fp16 d, fp16 dmin, 12 bytes of 6-bit scales
and mins (packed as Q4_K's), 32 bytes qh, 128 bytes of 4-bit codes.

Nibbles as Q4_K; the fifth bit of element e = 64c + 32h + l is bit (2c + h)
of qh[l]. value = (d * sc_j) * q - (dmin * m_j).
"""

from quantir.compiler.encodings.base import ElementSet, LaneGroup
from quantir.compiler.encodings.q4_k import Q4_KLayout
from quantir.dialects.encoding import QuantizationEncoding

QH, QS = 16, 48


def _code(c: int, high: bool):
    bit = 2 * c + int(high)

    def unpack(e, blk, s):
        nibble = e.shrui(s[0], 4) if high else e.andi(s[0], 15)
        return e.ori(nibble, e.shli(e.andi(e.shrui(s[1], bit), 1), 4))

    return unpack


class Q5_KLayout(Q4_KLayout):
    """Q4_K's header and scales, with a fifth bit per code."""

    encoding = QuantizationEncoding.Q5_K
    code_bits = 5
    groups = tuple(
        LaneGroup(
            (QS + 32 * c, QH),
            (
                ElementSet(64 * c, 2 * c, _code(c, False)),
                ElementSet(64 * c + 32, 2 * c + 1, _code(c, True)),
            ),
        )
        for c in range(4)
    )
