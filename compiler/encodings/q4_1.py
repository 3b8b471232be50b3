"""Q4_1: 32 weights in 20 bytes: fp16 d, fp16 m, 16 bytes of 4-bit codes.

Nibble order as Q4_0; value = d * q + m.
"""

from quantir.compiler.encodings.base import (
    BlockLayout,
    ElementSet,
    LaneGroup,
)
from quantir.dialects.encoding import QuantizationEncoding

QS = 4


class Q4_1Layout(BlockLayout):
    encoding = QuantizationEncoding.Q4_1
    code_bits = 4
    lanes = 16
    sub_blocks = 1
    fp16_fields = {"d": 0, "m": 2}
    has_offsets = True
    offset_sign = +1
    groups = (
        LaneGroup(
            (QS,),
            (
                ElementSet(0, 0, lambda e, blk, s: e.andi(s[0], 15)),
                ElementSet(16, 0, lambda e, blk, s: e.shrui(s[0], 4)),
            ),
        ),
    )
