"""Per-encoding layout and unpacking, one module per encoding.

Every backend lowers through these descriptions: the CPU vectorizes their
lane groups, the GPU maps lanes to threads. `layout_for` returns the block
layout of a GGUF encoding; GPTQ's column-major packing lives in `gptq`.
"""

from __future__ import annotations

from functools import cache

from quantir.compiler.encodings.base import BlockLayout
from quantir.dialects.encoding import QuantizationEncoding


@cache
def layout_for(encoding: QuantizationEncoding) -> BlockLayout:
    """The block layout of a GGUF encoding (ValueError for GPTQ)."""
    from quantir.compiler.encodings import (
        q2_k,
        q3_k,
        q4_0,
        q4_1,
        q4_k,
        q5_0,
        q5_1,
        q5_k,
        q6_k,
        q8_0,
    )

    layouts = {
        QuantizationEncoding.Q4_0: q4_0.Q4_0Layout,
        QuantizationEncoding.Q4_1: q4_1.Q4_1Layout,
        QuantizationEncoding.Q5_0: q5_0.Q5_0Layout,
        QuantizationEncoding.Q5_1: q5_1.Q5_1Layout,
        QuantizationEncoding.Q8_0: q8_0.Q8_0Layout,
        QuantizationEncoding.Q2_K: q2_k.Q2_KLayout,
        QuantizationEncoding.Q3_K: q3_k.Q3_KLayout,
        QuantizationEncoding.Q4_K: q4_k.Q4_KLayout,
        QuantizationEncoding.Q5_K: q5_k.Q5_KLayout,
        QuantizationEncoding.Q6_K: q6_k.Q6_KLayout,
    }
    if encoding not in layouts:
        raise ValueError(f"{encoding.name} is not a GGUF block format")
    layout = layouts[encoding]()
    layout.check()
    return layout
