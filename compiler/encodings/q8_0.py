"""Q8_0: 32 weights in 34 bytes: fp16 d, then 32 signed 8-bit codes; value = d * q."""

from quantir.compiler.encodings.base import (
    BlockLayout,
    ElementSet,
    LaneGroup,
)
from quantir.dialects.encoding import QuantizationEncoding

QS = 2


class Q8_0Layout(BlockLayout):
    encoding = QuantizationEncoding.Q8_0
    code_bits = 8
    code_bias = 128
    lanes = 32
    gpu_lane_width = 16  # one 16-lane run per GPU thread: wide loads, fewer scale decodes
    sub_blocks = 1
    fp16_fields = {"d": 0}
    groups = (LaneGroup((QS,), (ElementSet(0, 0, lambda e, blk, s: s[0], signed=True),)),)
