"""GPTQ: b-bit codes packed LSB-first into 32-bit words, column-major.

qweight [K*b/32, N] packs the codes of column n along K as one bit stream:
code k occupies bits b*k .. b*k+b-1 of the stream, bit i of which is bit
i % 32 of word i // 32 (words read as unsigned). A *run* of codes fills whole
words: 8 codes in 1 word for 4 bits, 16 in 1 for 2, 4 in 1 for 8, and 32
codes in 3 words for 3 bits (codes 10 and 21 straddle two words). qzeros
[G, N*b/32] packs zero points the same way along N.

value[k, n] = scales[g, n] * (q[k, n] - z[g, n]) with g = g_idx[k], where z
is the stored zero + 1 for checkpoint format "gptq" (v1) and the stored
zero for "gptq_v2"; without desc_act, g = k // group_size.
"""

from __future__ import annotations

from xdsl.dialects.builtin import VectorType, i32, i64

from quantir.compiler.lowering.emitter import Emitter, Value


def code_in_run(e: Emitter, words: list[Value], j: int, bits: int) -> Value:
    """Code j (static) of a run whose words (i32 scalars or vectors) are given."""
    mask = (1 << bits) - 1
    w, off = divmod(bits * j, 32)
    low = e.shrui(words[w], off)
    if off + bits > 32:  # straddles into the next word (3-bit codes 10 and 21)
        low = e.ori(low, e.shli(words[w + 1], 32 - off))
    return e.andi(low, mask)


def code_at(e: Emitter, bit_offset: Value, word: Value, next_word: Value, bits: int) -> Value:
    """The code at a dynamic bit offset of the stream, given the word that holds
    its first bit and the word after it (only read when the code straddles)."""
    mask = (1 << bits) - 1
    t = word.type
    wide = VectorType(i64, t.get_shape()) if isinstance(t, VectorType) else i64
    shift = e.index_cast(e.remui(bit_offset, 32), i64)
    if isinstance(t, VectorType):
        shift = e.broadcast(shift, wide)
    if 32 % bits == 0:
        # Codes never straddle: a 32-bit shift is enough.
        s32 = e.trunci(shift, i32)
        return e.andi(e.shrui(word, s32), mask)
    both = e.ori(e.extui(word, i64), e.shli(e.extui(next_word, i64), 32))
    return e.trunci(e.andi(e.shrui(both, shift), mask), i32)
