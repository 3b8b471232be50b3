"""outline-kernels: every top-level parallel loop nest becomes a kernel.

In each host function, each `scf.parallel` that sits directly in the body is
moved into its own `func.func` marked `qrt.kernel`, and replaced by a
`qrt.launch` of that kernel over the range of its first dimension. The
kernel takes its `[lo, hi)` slice of that range as its first two arguments,
then every value the loop nest used from the host (buffers and sizes;
constants are re-created inside instead of passed).

```mlir
// before
func.func @f(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  %n = memref.dim %x, %c0 : memref<?x64xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) { ... }
  func.return
}
// after
func.func @f(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  %n = memref.dim %x, %c0 : memref<?x64xf32>
  qrt.launch @f_kernel0(%x, %y) range(%n) : memref<?x64xf32>, memref<?x64xf32>
  func.return
}
func.func @f_kernel0(%lo: index, %hi: index, %x: memref<?x64xf32>, %y: memref<?x64xf32>)
    attributes {qrt.kernel} {
  scf.parallel (%i) = (%lo) to (%hi) step (%c1) { ... }
  func.return
}
```

Launches share kernels: a nest whose kernel is structurally equal to one
already outlined (same argument types, same operations and attributes, the
same uses; SSA names aside) launches that kernel instead of a copy, so a graph
with a hundred matmuls of seven distinct shapes lowers and compiles seven
matmul kernels. Candidates are bucketed by (function type, operation count),
so the check costs one walk per kernel, not one per pair of kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, scf
from xdsl.dialects.builtin import IndexType, IntegerAttr, ModuleOp, UnitAttr
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from quantir.dialects.qrt import KERNEL_ATTR, LaunchOp


def _is_const_int(v: SSAValue, value: int) -> bool:
    op = v.owner
    return (
        isinstance(op, arith.ConstantOp)
        and isinstance(op.value, IntegerAttr)
        and op.value.value.data == value
    )


def captured_values(op: Operation, skip: frozenset[int] = frozenset()) -> list[SSAValue]:
    """Values used inside `op` (at any depth) but defined outside it, in first-use order.

    The operands of `op` itself at the positions in `skip` do not count.
    """
    inside: set[SSAValue] = set()
    for inner in op.walk():
        inside.update(inner.results)
        for region in inner.regions:
            for block in region.blocks:
                inside.update(block.args)
    seen: dict[SSAValue, None] = {}
    for inner in op.walk():
        for position, operand in enumerate(inner.operands):
            if operand in inside or (inner is op and position in skip):
                continue
            seen.setdefault(operand, None)
    return list(seen)


@dataclass(frozen=True)
class OutlineKernelsPass(ModulePass):
    """Move top-level scf.parallel nests into kernels launched by qrt.launch."""

    name = "outline-kernels"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        outliner = KernelOutliner(op)
        for host in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            if host.is_declaration or KERNEL_ATTR in host.attributes:
                continue
            for loop in [o for o in host.body.block.ops if isinstance(o, scf.ParallelOp)]:
                outliner.outline(loop, host)


class KernelOutliner:
    """Outlines top-level loop nests of a module's host functions into kernels
    named `<function>_kernel<N>` (fresh names), sharing a kernel between equal nests."""

    def __init__(self, module: ModuleOp) -> None:
        self.module = module
        self._used = {f.sym_name.data for f in module.ops if isinstance(f, func.FuncOp)}
        self._counts: dict[str, int] = {}
        self._table = _KernelTable()

    def _fresh(self, host: str) -> str:
        count = self._counts.get(host, 0)
        while f"{host}_kernel{count}" in self._used:
            count += 1
        name = f"{host}_kernel{count}"
        self._used.add(name)
        self._counts[host] = count + 1
        return name

    def outline(self, loop: scf.ParallelOp, host: func.FuncOp) -> LaunchOp:
        """Replace `loop` (directly in `host`'s body) by a launch of its kernel: one
        outlined before when structurally equal, else a new one placed after `host`."""
        nest = _nest(loop)
        same = self._table.find(nest)
        if same is not None:  # launch it: no copy is made
            launch = LaunchOp(same.sym_name.data, nest.passed, nest.range)
            Rewriter.replace_op(loop, launch)
            return launch
        key = nest.key()  # before _outline() erases the host loop
        launch, kernel = _outline(nest, self._fresh(host.sym_name.data))
        self._table.add(key, kernel)
        self.module.body.block.insert_op_after(kernel, host)
        return launch


def _nest(loop: scf.ParallelOp) -> _Nest:
    name = OutlineKernelsPass.name
    if loop.initVals:
        raise PassFailedException(f"{name}: parallel loops with reductions are not supported")
    if not _is_const_int(loop.lowerBound[0], 0) or not _is_const_int(loop.step[0], 1):
        raise PassFailedException(
            f"{name}: the first dimension of a parallel loop must start at 0 with step 1"
        )
    # Dimension 0's bounds are replaced by (lo, hi): its upper bound is the
    # launch range, not an argument.
    captured = captured_values(loop, frozenset({len(loop.lowerBound)}))
    constants = [v for v in captured if isinstance(v.owner, arith.ConstantOp)]
    passed = [v for v in captured if v not in constants]
    return _Nest(loop, constants, passed)


def _outline(nest: _Nest, name: str) -> tuple[LaunchOp, func.FuncOp]:
    """The kernel of `nest`, which it replaces by a launch of the kernel."""
    loop, constants, passed = nest.loop, nest.constants, nest.passed
    block = Block(arg_types=[IndexType(), IndexType(), *[v.type for v in passed]])
    lo, hi = block.args[0], block.args[1]
    lo.name_hint, hi.name_hint = "lo", "hi"
    value_map: dict[SSAValue, SSAValue] = {}
    for v, arg in zip(passed, block.args[2:]):
        value_map[v] = arg
        arg.name_hint = v.name_hint
    for c in constants:
        clone = c.owner.clone()
        block.add_op(clone)
        value_map[c] = clone.results[0]
    launch = LaunchOp(name, passed, nest.range)
    Rewriter.insert_op(launch, InsertPoint.before(loop))
    # The nest itself moves into the kernel (a copy would cost as much as
    # building it): its uses of host values become uses of the kernel's.
    loop.detach()
    inside = set(loop.walk())
    for value, replacement in value_map.items():
        value.replace_uses_with_if(replacement, lambda use: use.operation in inside)
    loop.operands[0] = lo  # lower bound of dimension 0
    loop.operands[len(loop.lowerBound)] = hi  # its upper bound
    block.add_op(loop)
    block.add_op(func.ReturnOp())

    kernel = func.FuncOp(name, ([a.type for a in block.args], []), Region(block))
    kernel.attributes[KERNEL_ATTR] = UnitAttr()
    return launch, kernel


@dataclass
class _Nest:
    """A host loop nest and what its kernel takes: constants re-created, values passed."""

    loop: scf.ParallelOp
    constants: list[SSAValue]
    passed: list[SSAValue]

    @property
    def range(self) -> SSAValue:
        return self.loop.upperBound[0]

    def key(self) -> tuple[object, ...]:
        """Equal for nests that may share a kernel (cheap; `same_kernel` decides)."""
        return (
            tuple(v.type for v in self.passed),
            tuple(v.owner.value for v in self.constants),  # type: ignore[attr-defined]
            sum(1 for _ in self.loop.walk()),
        )

    def same_kernel(self, kernel: func.FuncOp) -> bool:
        """Whether `kernel` (outlined from a nest of the same key) computes this nest."""
        ops = list(kernel.body.block.ops)
        clones, kernel_loop = ops[: len(self.constants)], ops[len(self.constants)]
        args = kernel.body.block.args[2:]
        context: dict = {v: arg for v, arg in zip(self.passed, args, strict=True)}
        context.update({c: op.results[0] for c, op in zip(self.constants, clones, strict=True)})
        loop = self.loop
        if (
            not isinstance(kernel_loop, scf.ParallelOp)
            or len(loop.operands) != len(kernel_loop.operands)
            or loop.attributes != kernel_loop.attributes
            or loop.properties != kernel_loop.properties
        ):
            return False
        bounds = (0, len(loop.lowerBound))  # (lo, hi) in the kernel
        for position, (ours, theirs) in enumerate(zip(loop.operands, kernel_loop.operands)):
            if position not in bounds and context.get(ours, ours) != theirs:
                return False
        return loop.body.is_structurally_equivalent(kernel_loop.body, context)


class _KernelTable:
    """Outlined kernels, found again by structure (names of values aside)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[object, ...], list[func.FuncOp]] = {}

    def find(self, nest: _Nest) -> func.FuncOp | None:
        for kernel in self._buckets.get(nest.key(), ()):
            if nest.same_kernel(kernel):
                return kernel
        return None

    def add(self, key: tuple[object, ...], kernel: func.FuncOp) -> None:
        self._buckets.setdefault(key, []).append(kernel)
