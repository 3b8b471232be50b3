"""Unsigned stored codes and offset terms: what both integer qmatmul paths share.

The vector-dot path (`gguf_int8`) and the tile path (`gguf_amx`) multiply the
same operands: each run of 32 consecutive weights of a block as its unsigned
stored codes (`code + code_bias`, a vector<32xi8>), and per sub-block the
term that undoes the bias and adds the min against the sums of the quantized
x (`offset_term`).
"""

from __future__ import annotations

from quantir.compiler.encodings.base import (
    BlockBytes,
    BlockLayout,
    ElementSet,
    LaneGroup,
    SubBlockScale,
)
from quantir.compiler.lowering.activation_quant import ACTIVATION_BLOCK
from quantir.compiler.lowering.emitter import Emitter, Value

RUN = ACTIVATION_BLOCK
"""Weights per dot product: one activation block, 32 bytes of codes."""


def runs_of(group: LaneGroup, lanes: int) -> list[tuple[ElementSet, ...]]:
    """The element sets of a lane group, joined into runs of 32 consecutive weights.

    Formats with 16 lanes (Q4_0's low and high nibbles) join two sets; every
    run starts at a multiple of 32, so it lies inside one activation block.
    """
    sets = sorted(group.elements, key=lambda es: es.first)
    runs: list[tuple[ElementSet, ...]] = []
    pending: list[ElementSet] = []
    for es in sets:
        pending.append(es)
        if len(pending) * lanes == RUN:
            runs.append(tuple(pending))
            pending = []
    if pending:
        raise NotImplementedError("element sets do not form runs of 32 weights")
    for run in runs:
        assert run[0].first % RUN == 0, run
        assert all(a.first + lanes == b.first for a, b in zip(run, run[1:])), run
    return runs


def concat(e: Emitter, parts: list[Value]) -> Value:
    if len(parts) == 1:
        return parts[0]
    n = parts[0].type.get_shape()[0]
    return e.shuffle(parts[0], parts[1], list(range(2 * n)))


def stored_codes(
    e: Emitter, blk: BlockBytes, run: tuple[ElementSet, ...], srcs: list[Value], bias: int
) -> Value:
    """The unsigned stored codes of a run of 32 weights, as vector<32xi8>."""
    return concat(e, [e.add(es.unpack(e, blk, srcs), bias) for es in run])


def offset_term(e: Emitter, layout: BlockLayout, s: SubBlockScale) -> Value:
    """bias * scale_j -/+ offset_j: what sub-block j subtracts per unit of x."""
    term = e.mulf(s.scale, float(layout.code_bias)) if layout.code_bias else None
    if s.offset is None:
        assert term is not None
        return term
    if layout.offset_sign < 0:
        return s.offset if term is None else e.addf(term, s.offset)
    return e.mulf(s.offset, -1.0) if term is None else e.subf(term, s.offset)
