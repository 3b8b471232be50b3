"""SSA dominance: every use of a value must come after its definition.

xDSL's verifier does not check dominance, so a use before its definition
parsed and verified, then crashed a lowering pass far from the user's line.
`first_dominance_error` finds the first such use, in program order, so the
verifier can report it with the use's location, as MLIR does ("operand #0
does not dominate this use").
"""

from __future__ import annotations

from xdsl.ir import Block, BlockArgument, Operation, OpResult, Region, SSAValue
from xdsl.irdl.dominance import DominanceInfo


class _Order:
    """Positions of operations in their blocks and block dominance, computed once per module."""

    def __init__(self) -> None:
        self._index: dict[Block, dict[Operation, int]] = {}
        self._dominance: dict[Region, DominanceInfo] = {}

    def index(self, op: Operation) -> int:
        block = op.parent_block()
        assert block is not None
        positions = self._index.get(block)
        if positions is None:
            positions = {o: i for i, o in enumerate(block.ops)}
            self._index[block] = positions
        return positions[op]

    def block_dominates(self, a: Block, b: Block) -> bool:
        region = a.parent
        assert region is not None
        info = self._dominance.get(region)
        if info is None:
            info = DominanceInfo(region)
            self._dominance[region] = info
        return info.dominates(a, b)


def _defining_block(value: SSAValue) -> Block | None:
    if isinstance(value, OpResult):
        return value.op.parent_block()
    if isinstance(value, BlockArgument):
        return value.block
    return None


def _dominates(value: SSAValue, user: Operation, order: _Order) -> bool:
    """Whether `value` is defined before `user` on every path that reaches it."""
    block = _defining_block(value)
    if block is None or block.parent is None:
        return True  # a value outside any region: xDSL's verifier reports it
    region = block.parent
    # The ancestor of `user` (possibly `user`) that lies in the value's region.
    ancestor: Operation | None = user
    while ancestor is not None and ancestor.parent_region() is not region:
        ancestor = ancestor.parent_op()
    if ancestor is None:
        return False  # used outside the region that defines it
    at = ancestor.parent_block()
    assert at is not None
    if at is not block:
        return order.block_dominates(block, at)
    if isinstance(value, BlockArgument):
        return True
    assert isinstance(value, OpResult)
    # An op does not dominate itself, nor the ops in its own regions.
    return order.index(value.op) < order.index(ancestor)


def _value_name(value: SSAValue) -> str:
    return f"%{value.name_hint}" if value.name_hint else "a value"


def first_dominance_error(root: Operation) -> tuple[Operation, str] | None:
    """The first operation (in program order) with an operand its definition does not
    dominate, and the message; None when every use is dominated."""
    order = _Order()
    for op in root.walk():
        for i, operand in enumerate(op.operands):
            if not _dominates(operand, op, order):
                return op, (
                    f"operand #{i} ({_value_name(operand)}) of '{op.name}' does not dominate "
                    "this use: it is defined after it, or in a region this use is not in"
                )
    return None
