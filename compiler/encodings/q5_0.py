"""Q5_0: 32 weights in 22 bytes: fp16 d, a 32-bit word qh, 16 bytes of nibbles.

The low 4 bits of element e are nibbles as in Q4_0; bit e of qh is bit 4.
value = d * (q - 16).
"""

from xdsl.dialects.builtin import i8

from quantir.compiler.encodings.base import (
    BlockLayout,
    ElementSet,
    LaneGroup,
)
from quantir.dialects.encoding import QuantizationEncoding

QH, QS = 2, 6


def fifth_bit(e, blk, qh_at: int, first: int):
    """Bit (first + lane) of the 32-bit qh word, moved to bit 4, as i8 lanes."""
    if blk.vectorized:
        # Byte-wise: lane l reads byte (first+l)//8 of qh and tests its bit
        # (first+l)%8, all in 8-bit lanes (cheaper than 32-bit variable shifts).
        lanes = blk.lanes
        qh = blk.bytes(qh_at, 4)
        pick = [(first + lane) // 8 for lane in range(lanes)]
        spread = e.shuffle(qh, qh, pick)
        masks = e.vconst([1 << ((first + lane) % 8) for lane in range(lanes)], i8)
        return e.shli(e.minui(e.andi(spread, masks), 1), 4)
    qh = blk.splat(blk.u32(qh_at))
    bit = e.andi(e.shrui(qh, e.add(blk.lane_iota(), first)), 1)
    return e.shli(e.trunci(bit, i8), 4)


class Q5_0Layout(BlockLayout):
    encoding = QuantizationEncoding.Q5_0
    code_bits = 5
    code_bias = 16
    lanes = 16
    sub_blocks = 1
    fp16_fields = {"d": 0}
    groups = (
        LaneGroup(
            (QS,),
            (
                ElementSet(
                    0,
                    0,
                    lambda e, blk, s: e.sub(e.ori(e.andi(s[0], 15), fifth_bit(e, blk, QH, 0)), 16),
                    signed=True,
                ),
                ElementSet(
                    16,
                    0,
                    lambda e, blk, s: e.sub(e.ori(e.shrui(s[0], 4), fifth_bit(e, blk, QH, 16)), 16),
                    signed=True,
                ),
            ),
        ),
    )
