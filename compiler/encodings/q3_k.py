"""Q3_K: 256 weights in 110 bytes: 32 bytes hmask (third bit), 64 bytes of
2-bit codes, 12 bytes of packed 6-bit signed scales (one per 16 weights), fp16 d.

Element e = 128n + 32j + l: low bits (qs[32n + l] >> 2j) & 3; the code is
that minus 4 when bit (4n + j) of hmask[l] is clear. Scale i (0..15): low 4
bits from scales[i % 8] (low nibble for i < 8, high nibble after), high 2
bits (scales[8 + i % 4] >> 2*(i / 4)) & 3, minus 32. value = (d * sc) * q.
"""

from xdsl.dialects.builtin import VectorType, i8

from quantir.compiler.encodings.base import (
    BlockLayout,
    ElementSet,
    LaneGroup,
    ScaleVectors,
    SubBlockScale,
)
from quantir.dialects.encoding import QuantizationEncoding

HMASK, QS, SCALES, D = 0, 32, 96, 108


def _code(n: int, j: int):
    def unpack(e, blk, s):
        low = e.andi(e.shrui(s[0], 2 * j), 3)
        missing_high = e.xori(e.andi(e.shrui(s[1], 4 * n + j), 1), 1)
        return e.sub(low, e.shli(missing_high, 2))

    return unpack


class Q3_KLayout(BlockLayout):
    encoding = QuantizationEncoding.Q3_K
    int8_pairs_for_one_row = True
    int8_integer_blocks = True
    # Runs 128 weights apart share their code bytes' offset (qs[32n + l]):
    # the pair is one 64-byte load shifted by 2j.
    int8_unit_runs = tuple((32 * j, 128 + 32 * j) for j in range(4))
    code_bits = 3
    code_bias = 4
    lanes = 32
    sub_blocks = 16
    fp16_fields = {"d": D}
    # 32-lane runs span two 16-weight sub-blocks (lanes 0-15, 16-31).
    groups = tuple(
        LaneGroup(
            (QS + 32 * n, HMASK),
            tuple(
                ElementSet(
                    128 * n + 32 * j, (8 * n + 2 * j, 8 * n + 2 * j + 1), _code(n, j), signed=True
                )
                for j in range(4)
            ),
        )
        for n in range(2)
    )

    def scale(self, blk, hdr, j):
        e = blk.e
        low_byte = blk.u8(SCALES + j % 8)
        low = e.andi(low_byte, 15) if j < 8 else e.shrui(low_byte, 4)
        high = e.andi(e.shrui(blk.u8(SCALES + 8 + j % 4), 2 * (j // 4)), 3)
        sc = e.sub(e.ori(low, e.shli(high, 4)), 32)
        return SubBlockScale(e.mulf(hdr["d"], e.sitofp(sc)))

    def int8_unit_codes(self, blk, unit):
        """Runs (32j, 128 + 32j), j = unit: low bits from qs[0:64] >> 2j, plus 4
        where bit j (first half) or 4 + j (second half) of hmask[l] is set.

        The second half reads hmask >> 4, so that both halves take bit j and
        one shift of all 64 bytes moves it to bit 2."""
        e = blk.e
        low = e.andi(e.shrui(blk.bytes(QS, 64), 2 * unit), 3)
        hm = blk.bytes(HMASK, 32)
        both = e.shuffle(hm, e.shrui(hm, 4), list(range(64)))
        if unit < 2:
            both = e.shli(both, 2 - unit)
        elif unit > 2:
            both = e.shrui(both, unit - 2)
        return e.ori(low, e.andi(both, 4))

    def int_scales(self, blk, hdr):
        return self._scale_bytes(blk)

    def scale_vectors(self, blk, hdr):
        e = blk.e
        sc = self._scale_bytes(blk)
        d = e.broadcast(hdr["d"], VectorType(hdr["d"].type, [16]))
        return ScaleVectors(e.mulf(d, e.sitofp(sc)))

    @staticmethod
    def _scale_bytes(blk):
        """The sixteen scales at once (vector<16xi8>), by `scale`'s formula in 8-bit lanes.

        Reads the 16 bytes ending just before d (the 12 scale bytes are the
        last 12 of them), so the read stays inside the block.
        """
        e = blk.e
        first = D - 16
        s = blk.bytes(first, 16)
        at = SCALES - first
        low_src = e.shuffle(s, s, [at + j % 8 for j in range(16)])
        low = e.andi(e.shrui(low_src, e.vconst([0] * 8 + [4] * 8, i8)), 15)
        high_src = e.shuffle(s, s, [at + 8 + j % 4 for j in range(16)])
        high = e.andi(e.shrui(high_src, e.vconst([2 * (j // 4) for j in range(16)], i8)), 3)
        return e.sub(e.ori(low, e.shli(high, 4)), 32)
