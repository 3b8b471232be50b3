"""Q5_1: 32 weights in 24 bytes: fp16 d, fp16 m, 32-bit qh, 16 bytes of nibbles.

Bits as Q5_0; value = d * q + m.
"""

from quantir.compiler.encodings.base import (
    BlockLayout,
    ElementSet,
    LaneGroup,
)
from quantir.compiler.encodings.q5_0 import fifth_bit
from quantir.dialects.encoding import QuantizationEncoding

QH, QS = 4, 8


class Q5_1Layout(BlockLayout):
    encoding = QuantizationEncoding.Q5_1
    code_bits = 5
    lanes = 16
    sub_blocks = 1
    fp16_fields = {"d": 0, "m": 2}
    has_offsets = True
    offset_sign = +1
    groups = (
        LaneGroup(
            (QS,),
            (
                ElementSet(
                    0, 0, lambda e, blk, s: e.ori(e.andi(s[0], 15), fifth_bit(e, blk, QH, 0))
                ),
                ElementSet(
                    16, 0, lambda e, blk, s: e.ori(e.shrui(s[0], 4), fifth_bit(e, blk, QH, 16))
                ),
            ),
        ),
    )
