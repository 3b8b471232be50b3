"""Q6_K: 256 weights in 210 bytes: 128 bytes ql (low 4 bits), 64 bytes qh
(high 2 bits), 16 signed 8-bit scales (one per 16 weights), fp16 d.

Element e = 128n + 32g + l (n 0..1, g 0..3, l 0..31): low bits from
ql[64n + 32*(g&1) + l] (low nibble for g<2, high for g>=2), high bits
(qh[32n + l] >> 2g) & 3. value = (d * sc[e/16]) * (q - 32).
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

QL, QH, SCALES, D = 0, 128, 192, 208


def _code(g: int):
    def unpack(e, blk, s):
        ql = s[g & 1]
        low = e.andi(ql, 15) if g < 2 else e.shrui(ql, 4)
        high = e.shli(e.andi(e.shrui(s[2], 2 * g), 3), 4)
        return e.sub(e.ori(low, high), 32)

    return unpack


class Q6_KLayout(BlockLayout):
    encoding = QuantizationEncoding.Q6_K
    int8_pairs_for_one_row = True
    code_bits = 6
    code_bias = 32
    lanes = 32
    sub_blocks = 16
    fp16_fields = {"d": D}
    # Lane group n covers l = 0..31; each element set's lanes span two
    # 16-weight sub-blocks (lanes 0-15 and 16-31), so that whole runs of 32
    # consecutive weights are produced and stored in order.
    groups = tuple(
        LaneGroup(
            (QL + 64 * n, QL + 64 * n + 32, QH + 32 * n),
            tuple(
                ElementSet(128 * n + 32 * g, (8 * n + 2 * g, 8 * n + 2 * g + 1), _code(g), True)
                for g in range(4)
            ),
        )
        for n in range(2)
    )

    def scale(self, blk, hdr, j):
        e = blk.e
        return SubBlockScale(e.mulf(hdr["d"], e.sitofp(blk.u8(SCALES + j))))

    def scale_vectors(self, blk, hdr):
        e = blk.e
        sc = e.sitofp(blk.bytes(SCALES, 16))
        return ScaleVectors(e.mulf(e.broadcast(hdr["d"], VectorType(hdr["d"].type, [16])), sc))
