"""How a GGUF block format is described to the lowering.

A block of `elements_per_block` weights is unpacked in *lane groups*: a lane
group reads one or more runs of `lanes` contiguous bytes (its sources) and
produces one or more *element sets*, each a run of `lanes` contiguous weights
that share one sub-block scale. On the CPU the lanes of a group become one
vector operation; on a GPU they become threads (or a scalar loop). Either way
the per-element formula is the same code: each encoding module writes it
once, with `Emitter` ops that work on scalars and vectors alike.

The dequantized value of an element is always

    value = scale_j * float(q) (+ or -) offset_j

evaluated in that order (ggml's: `d1 * q - m1`, no fused multiply-add), where
`q` is the unpacked integer code, already biased (Q4_0's `q - 8`), and
`scale_j` / `offset_j` are the f32 parameters of its sub-block j.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import VectorType, f16, f32, i16, i32

from quantir.compiler.lowering.emitter import Emitter, Value
from quantir.dialects.encoding import QuantizationEncoding

Unpack = Callable[[Emitter, "BlockBytes", Sequence[Value]], Value]


@dataclass(frozen=True)
class ElementSet:
    """`lanes` consecutive weights (lane l is element `first + l` of the block).

    `sub_block` is the sub-block whose scale every lane uses, or a tuple of
    sub-blocks splitting the lanes evenly (lanes 0..L/2-1 use the first):
    Q6_K's 32-lane runs span two 16-weight sub-blocks.
    """

    first: int
    sub_block: int | tuple[int, ...]
    unpack: Unpack
    """(emitter, block, loaded sources) -> the integer code of each lane, as i8."""
    signed: bool = False
    """Whether the code is signed (it is converted with sitofp, else uitofp)."""


@dataclass(frozen=True)
class LaneGroup:
    sources: tuple[int, ...]
    """Byte offsets within the block; each is read as `lanes` contiguous bytes."""
    elements: tuple[ElementSet, ...]


@dataclass(frozen=True)
class SubBlockScale:
    """The f32 parameters of one sub-block: value = scale*q + sign*offset.

    The sign is the layout's (`BlockLayout.offset_sign`), one per encoding.
    """

    scale: Value
    offset: Value | None = None


@dataclass(frozen=True)
class ScaleVectors:
    """The parameters of all sub-blocks of a block at once (vector<sub_blocks x f32>)."""

    scales: Value
    offsets: Value | None = None


class BlockBytes:
    """Reads the bytes of one block of a packed [N, row_bytes] i8 memref.

    `lane` is None when lanes are vectorized, else the index of the lane this
    code runs for (a loop induction variable or a thread id). With `width` > 1
    (the GPU's wide lanes) the code runs for lanes `lane .. lane + width - 1`
    at once, as vectors of `width`; `lane` is then a multiple of `width`, and
    `base_align` (a power of two dividing the block's byte offset in the
    buffer) lets those lanes' bytes be read in one wide load.
    """

    def __init__(
        self,
        e: Emitter,
        mem: Value,
        row: Value,
        base: Value,
        lanes: int,
        lane: Value | None,
        width: int = 1,
        base_align: int = 1,
    ):
        self.e, self.mem, self.row, self.base = e, mem, row, base
        self.lanes, self.lane = lanes, lane
        self.width, self.base_align = width, base_align

    @property
    def vectorized(self) -> bool:
        return self.lane is None and self.lanes > 1

    def _col(self, offset: int) -> Value:
        return self.e.add(self.base, offset)

    def u8(self, offset: int) -> Value:
        """The byte at `offset` (an i8 scalar)."""
        return self.e.load(self.mem, [self.row, self._col(offset)])

    def _word(self, offset: int, nbytes: int, t) -> Value:
        e = self.e
        raw = e.vload(self.mem, [self.row, self._col(offset)], nbytes)
        return e.extract(e.bitcast(raw, VectorType(t, [1])), 0)

    def f16(self, offset: int) -> Value:
        """The little-endian fp16 at `offset`, widened exactly to f32."""
        return self.e.extf(self._word(offset, 2, f16), f32)

    def u16(self, offset: int) -> Value:
        return self._word(offset, 2, i16)

    def u32(self, offset: int) -> Value:
        """The little-endian 32-bit word at `offset` (i32)."""
        return self._word(offset, 4, i32)

    def bytes(self, offset: int, count: int) -> Value:
        """`count` bytes from `offset` as a vector<count x i8> (vectorized code only)."""
        return self.e.vload(self.mem, [self.row, self._col(offset)], count)

    def lane_bytes(self, offset: int) -> Value:
        """Byte `offset + lane` for every lane: vector<lanes x i8>, or an i8 scalar."""
        if self.lane is None:
            return self.e.vload(self.mem, [self.row, self._col(offset)], self.lanes)
        col = self.e.add(self._col(offset), self.lane)
        if self.width == 1:
            return self.e.load(self.mem, [self.row, col])
        align = min(self.width, self.base_align, offset & -offset if offset else self.width)
        return self.e.vload(self.mem, [self.row, col], self.width, align=align)

    def lane_iota(self, t=i32) -> Value:
        """The lane index of every lane, as `t` (vector or scalar)."""
        e = self.e
        if self.lane is None:
            if self.lanes == 1:
                return e.const(0, t)
            return e.vconst(list(range(self.lanes)), t)
        first = e.index_cast(self.lane, t)
        if self.width == 1:
            return first
        iota = e.vconst(list(range(self.width)), t)
        return e.add(e.broadcast(first, VectorType(t, [self.width])), iota)

    def splat(self, scalar: Value) -> Value:
        """A per-block scalar as a value of the lanes' shape."""
        if self.lane is None and self.lanes > 1:
            return self.e.broadcast(scalar, VectorType(scalar.type, [self.lanes]))
        if self.lane is not None and self.width > 1:
            return self.e.broadcast(scalar, VectorType(scalar.type, [self.width]))
        return scalar


class BlockLayout:
    """A GGUF block format: byte layout and unpacking (subclassed per encoding)."""

    encoding: QuantizationEncoding
    lanes: int
    sub_blocks: int
    groups: tuple[LaneGroup, ...]

    @property
    def elements_per_block(self) -> int:
        return self.encoding.elements_per_block

    @property
    def block_size(self) -> int:
        return self.encoding.block_size

    @property
    def sub_block_size(self) -> int:
        return self.elements_per_block // self.sub_blocks

    offset_sign: int = -1
    """The sign of the offset term, shared by every sub-block of the encoding."""

    @staticmethod
    def sub_blocks_of(es: ElementSet) -> tuple[int, ...]:
        return es.sub_block if isinstance(es.sub_block, tuple) else (es.sub_block,)

    has_offsets: bool = False
    """Whether values carry an additive offset term (Q4_K's `- m1`)."""

    code_bits: int
    """Bits of the stored (unsigned) code: 4 for Q4_0, 6 for Q6_K, 8 for Q8_0."""

    int8_pairs_for_one_row: bool = False
    """Whether the integer-dot path multiplies 64 weights per dot even for a single
    row of x (it always does for several rows when the layout allows): a
    measured choice per format (it pays for Q6_K, Q3_K and Q2_K, whose unpacking
    is heavier, not for Q4_K and Q5_K)."""

    int8_integer_blocks: bool = False
    """Whether the integer-dot path sums each block in integers: dots scaled by
    the integer sub-block scales (`int_scales`, `qrt.dot_u8i8_scaled`), one
    conversion per block, x quantized with one scale per block (as ggml's
    Q8_K). A measured choice per format: it pays for Q2_K and Q3_K (M=1:
    about +15% and +6%), whose 16-weight sub-blocks otherwise take a
    lane-scale shuffle, a conversion and an FMA per dot; Q6_K measured the
    same either way (its M=1 calls are bound by reading its 210-byte blocks),
    so it keeps x's scales per 32 and their smaller error."""

    int8_unit_runs: tuple[tuple[int, int], ...] = ()
    """With `int8_integer_blocks`: the pairs of 32-weight runs (by first element)
    each 64-byte dot multiplies, in order; x's codes are stored in that order
    so that each dot reads 64 contiguous bytes of x."""

    gpu_lane_width: int = 8
    """How many consecutive lanes one thread of the scalar (GPU) qmatmul handles,
    as vectors: its bytes of a source come in one wide load where the block's
    alignment allows, and the sub-block scales it decodes serve that many
    lanes. Divides lanes / 2 (a run spanning two sub-blocks splits in halves).
    1 keeps one lane per thread. Dequantize always takes one lane per thread
    (coalesced stores)."""

    code_bias: int = 0
    """What `unpack` subtracts from the stored code (Q4_0's 8, Q8_0's 128): adding
    it back gives the unsigned stored code in [0, 2^code_bits), which is what
    the integer dot-product path multiplies (it folds the bias into the
    sub-block offsets)."""

    @property
    def provides_scale_vectors(self) -> bool:
        return type(self).scale_vectors is not BlockLayout.scale_vectors

    fp16_fields: dict[str, int]
    """The block-level fp16 fields (d, dmin, m) by name, at their byte offsets."""

    def header(self, blk: BlockBytes) -> dict[str, Value]:
        """Load the block-level fields (`fp16_fields`), widened exactly to f32."""
        return {name: blk.f16(offset) for name, offset in self.fp16_fields.items()}

    def scale(self, blk: BlockBytes, hdr: dict[str, Value], j: int) -> SubBlockScale:
        """Emit the parameters of sub-block `j` (scalar code).

        The default is the 32-weight formats' one scale per block: `d`, and
        the offset `m` where the block has one; K-quants override it.
        """
        if self.sub_blocks != 1:
            raise NotImplementedError(f"{self.encoding.name}: sub-block scales")
        return SubBlockScale(hdr["d"], hdr.get("m"))

    def scale_vectors(self, blk: BlockBytes, hdr: dict[str, Value]) -> ScaleVectors | None:
        """Emit all sub-block parameters as vectors (CPU), or None if not provided.

        Must compute exactly what `scale` computes for each j (same ops, same
        order), so that vectorized and scalar code agree bit for bit.
        """
        return None

    def int8_unit_codes(self, blk: BlockBytes, unit: int) -> Value:
        """With `int8_integer_blocks`: the stored codes of the runs
        `int8_unit_runs[unit]` as one vector<64xi8> (64-byte operations, which
        LLVM does not form from two unpacked halves)."""
        raise NotImplementedError(f"{self.encoding.name}: integer-block unit codes")

    int_scales_signed: bool = True
    """Whether `int_scales` are signed bytes (else unsigned)."""

    def int_scales(self, blk: BlockBytes, hdr: dict[str, Value]) -> Value:
        """With `int8_integer_blocks`: the sub-block scales as integers,
        vector<sub_blocks x i8> (signed per `int_scales_signed`), such that the
        scale of sub-block j is exactly `hdr["d"] * int_scales[j]`."""
        raise NotImplementedError(f"{self.encoding.name}: integer sub-block scales")

    def check(self) -> None:
        """Sanity-check the static description (each element covered once)."""
        seen: set[int] = set()
        for g in self.groups:
            for es in g.elements:
                subs = self.sub_blocks_of(es)
                assert self.lanes % len(subs) == 0, self.encoding
                for lane in range(self.lanes):
                    el = es.first + lane
                    assert el not in seen, (self.encoding, el)
                    owner = subs[lane * len(subs) // self.lanes]
                    assert owner == el // self.sub_block_size, (self.encoding, el)
                    seen.add(el)
        assert seen == set(range(self.elements_per_block)), self.encoding


MAGIC = 0x4B000000
"""The f32 bits of 2^23: (MAGIC | c) read as f32 is 2^23 + c exactly for 0 <= c < 2^23."""


def code_to_f32(e: Emitter, q: Value, signed: bool, no_convert: bool = False) -> Value:
    """The i8 code `q` as f32 (exact either way).

    `no_convert` (the GPU's scalar code) avoids the conversion instruction,
    which runs at a quarter of the rate of plain arithmetic on NVIDIA GPUs:
    the code, made unsigned (signed ones biased by 128), is or-ed into the
    mantissa of 2^23 and 2^23 (+ 128) subtracted, an exact float subtraction.
    """
    if not no_convert:
        return e.sitofp(q, f32) if signed else e.uitofp(q, f32)
    t = q.type
    ft = VectorType(f32, t.get_shape()) if isinstance(t, VectorType) else f32
    bias = 128 if signed else 0
    code = e.xori(q, -128) if signed else q  # q + 128 as an unsigned byte
    magic = e.bitcast(e.ori(e.extui(code, i32), MAGIC), ft)
    return e.subf(magic, e.const(float(2**23 + bias), ft))


def lane_scale(blk: BlockBytes, es: ElementSet, scale) -> SubBlockScale:
    """The sub-block parameters of each lane of `es`, shaped like the lanes."""
    subs = BlockLayout.sub_blocks_of(es)
    params = [scale(j) for j in subs]
    if len(params) == 1:
        p = params[0]
        off = blk.splat(p.offset) if p.offset is not None else None
        return SubBlockScale(blk.splat(p.scale), off)
    e = blk.e
    if len(params) != 2:
        raise NotImplementedError("lane runs span at most two sub-blocks")

    def pick(a: Value, b: Value) -> Value:
        if blk.lane is None:  # vectors: first half from a, second half from b
            half = blk.lanes // 2
            mask = list(range(half)) + [blk.lanes + i for i in range(half, blk.lanes)]
            return e.shuffle(blk.splat(a), blk.splat(b), mask)
        # Wide lanes never straddle the halves (the width divides lanes / 2).
        first_half = e.cmpi("ult", blk.lane, blk.lanes // 2)
        return blk.splat(e.select(first_half, a, b))

    scale_v = pick(params[0].scale, params[1].scale)
    off = None
    if params[0].offset is not None:
        assert params[1].offset is not None
        off = pick(params[0].offset, params[1].offset)
    return SubBlockScale(scale_v, off)


def dequant_value(e: Emitter, layout: BlockLayout, qf: Value, s: SubBlockScale) -> Value:
    """value = scale*q (+/-) offset, in ggml's evaluation order (no FMA).

    `s` holds lane-shaped values (see `lane_scale`).
    """
    v = e.mulf(s.scale, qf)
    if s.offset is not None:
        v = e.addf(v, s.offset) if layout.offset_sign > 0 else e.subf(v, s.offset)
    return v


def block_scales(
    layout: BlockLayout, blk: BlockBytes, hdr: dict[str, Value], vectorize_scales: bool
) -> Callable[[int], SubBlockScale]:
    """Per-sub-block parameters, computed once per block and reused by every lane group."""
    vecs = layout.scale_vectors(blk, hdr) if vectorize_scales else None
    cache: dict[int, SubBlockScale] = {}

    def get(j: int) -> SubBlockScale:
        if j not in cache:
            if vecs is not None:
                e = blk.e
                off = e.extract(vecs.offsets, j) if vecs.offsets is not None else None
                cache[j] = SubBlockScale(e.extract(vecs.scales, j), off)
            else:
                cache[j] = layout.scale(blk, hdr, j)
        return cache[j]

    get.vectors = vecs  # type: ignore[attr-defined]
    return get


__all__ = [
    "BlockBytes",
    "BlockLayout",
    "ElementSet",
    "LaneGroup",
    "ScaleVectors",
    "SubBlockScale",
    "block_scales",
    "code_to_f32",
    "dequant_value",
    "lane_scale",
]
