"""hoist-loop-constants: constants leave `scf.for` nests in one walk.

xDSL's `canonicalize` carries a constant out of an `scf.for` body one loop
at a time: each sweep over the module moves the constants of every loop
body to just before that loop, so the constants of a kernel's innermost
loops, four or five `scf.for`s deep, take as many full sweeps (each a walk
of every op of every kernel and a dead-code pass) before the module stops
changing. This pass moves every constant directly in an `scf.for` body to
where those sweeps would leave it, at once: before the outermost loop of its
chain of directly nested `scf.for`s, in the order the sweeps give (the
outermost loop's own constants first, then those one loop deeper, and so
on, each level in body order). `canonicalize` then needs one sweep less per
loop depth; constants are immediates in the LLVM translation, so the code
is the same.

```mlir
// before
scf.for %i = %c0 to %n step %c1 {
  %c4 = arith.constant 4 : index
  scf.for %j = %c0 to %c4 step %c1 {
    %c2 = arith.constant 2 : index
    ...
  }
}
// after
%c4 = arith.constant 4 : index
%c2 = arith.constant 2 : index
scf.for %i = %c0 to %n step %c1 {
  scf.for %j = %c0 to %c4 step %c1 {
    ...
  }
}
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import scf
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.traits import ConstantLike


def hoist_out_of(loop: scf.ForOp) -> None:
    """Move the constants of `loop`'s body and of the `scf.for`s directly nested in
    it (at any depth) to just before `loop`, level by level."""
    level: list[scf.ForOp] = [loop]
    while level:
        deeper: list[scf.ForOp] = []
        for current in level:
            for op in list(current.body.block.ops):
                if isinstance(op, scf.ForOp):
                    deeper.append(op)
                elif op.has_trait(ConstantLike) and not op.regions:
                    op.detach()
                    loop.parent_block().insert_op_before(op, loop)  # type: ignore[union-attr]
        level = deeper


def _outermost_loops(op: Operation) -> list[scf.ForOp]:
    """The `scf.for`s under `op` whose parent op is not an `scf.for`."""
    found = []
    for inner in op.walk():
        if isinstance(inner, scf.ForOp) and not isinstance(inner.parent_op(), scf.ForOp):
            found.append(inner)
    return found


@dataclass(frozen=True)
class HoistLoopConstantsPass(ModulePass):
    """Move constants out of scf.for nests in one walk (what canonicalize does a loop at a time)."""

    name = "hoist-loop-constants"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for loop in _outermost_loops(op):
            hoist_out_of(loop)
