"""Q2_K: 256 weights in 84 bytes: 16 scale bytes (low nibble scale, high
nibble min, per 16 weights), 64 bytes of 2-bit codes, fp16 d, fp16 dmin.

Element e = 128n + 32j + l (n 0..1, j 0..3, l 0..31) is (qs[32n + l] >> 2j) & 3.
value = (d * (sc & 15)) * q - (dmin * (sc >> 4)), sc = scales[e / 16].
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

SCALES, QS, D, DMIN = 0, 16, 80, 82


def _code(j: int):
    return lambda e, blk, s: e.andi(e.shrui(s[0], 2 * j), 3)


class Q2_KLayout(BlockLayout):
    encoding = QuantizationEncoding.Q2_K
    int8_pairs_for_one_row = True
    int8_integer_blocks = True
    int_scales_signed = False
    # Runs 128 weights apart share their code bytes' offset (qs[32n + l]):
    # the pair is one 64-byte load shifted by 2j.
    int8_unit_runs = tuple((32 * j, 128 + 32 * j) for j in range(4))
    code_bits = 2
    lanes = 32
    sub_blocks = 16
    fp16_fields = {"d": D, "dmin": DMIN}
    has_offsets = True
    # 32-lane runs span two 16-weight sub-blocks (lanes 0-15, 16-31).
    groups = tuple(
        LaneGroup(
            (QS + 32 * n,),
            tuple(
                ElementSet(128 * n + 32 * j, (8 * n + 2 * j, 8 * n + 2 * j + 1), _code(j))
                for j in range(4)
            ),
        )
        for n in range(2)
    )

    def scale(self, blk, hdr, j):
        e = blk.e
        sc = blk.u8(SCALES + j)
        return SubBlockScale(
            e.mulf(hdr["d"], e.uitofp(e.andi(sc, 15))),
            e.mulf(hdr["dmin"], e.uitofp(e.shrui(sc, 4))),
        )

    def int8_unit_codes(self, blk, unit):
        e = blk.e
        return e.andi(e.shrui(blk.bytes(QS, 64), 2 * unit), 3)

    def int_scales(self, blk, hdr):
        e = blk.e
        return e.andi(blk.bytes(SCALES, 16), 15)

    def scale_vectors(self, blk, hdr):
        e = blk.e
        sc = blk.bytes(SCALES, 16)
        v = VectorType(hdr["d"].type, [16])
        return ScaleVectors(
            e.mulf(e.broadcast(hdr["d"], v), e.uitofp(e.andi(sc, 15))),
            e.mulf(e.broadcast(hdr["dmin"], v), e.uitofp(e.shrui(sc, 4))),
        )
