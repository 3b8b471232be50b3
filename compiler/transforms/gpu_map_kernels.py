"""gpu-map-kernels: map outlined kernels onto a GPU grid.

Runs after `outline-kernels` on kernels lowered without vectorization. Each
kernel's parallel loop nest becomes thread-indexed code, following the
`qrt.gpu_mapping` hint the lowering put on the loop:

- "item" (default): one thread per iteration of the whole nest;
- "lanes": one thread per lane of each iteration: every loop marked
  `qrt.loop = "lanes"` is replaced by its body for the thread's lane, so
  consecutive threads touch consecutive bytes and elements (coalesced);
- "warp": one warp per iteration: the outermost loops marked
  `qrt.loop = "reduction"` are split across the 32 threads, and each f32
  they accumulate is summed over the warp with `qrt.warp_reduce`. Without
  lane loops inside, thread t takes iterations t, t+32, ...; with lane loops
  of L lanes inside, thread t is lane t % L of iteration t / L, t / L + 32/L,
  ... (so a warp reads 32/L consecutive blocks, each lane its own bytes).

The kernel keeps its `(lo, hi)` arguments: the runtime passes 0 and the
number of threads, and the kernel computes its global thread id from
`gpu.block_id`/`gpu.block_dim`/`gpu.thread_id`, returning when it is past
`hi`. The host's `qrt.launch` is rewritten to launch that many threads, in
blocks of `threads_per_block`.

```mlir
// before (host)
qrt.launch @f_kernel0(%w, %y) range(%n) : memref<?x18xi8>, memref<?x32xf32>
// after
%threads = arith.muli %n, %c16 : index
qrt.launch @f_kernel0(%w, %y) range(%threads)
    {items_per_block = 256 : i64, threads_per_block = 256 : i64} : ...
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, gpu, scf
from xdsl.dialects.builtin import Float32Type, IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from quantir.compiler.lowering.emitter import Emitter
from quantir.compiler.lowering.loop_roles import GPU_MAPPING_ATTR, LOOP_ATTR
from quantir.dialects.qrt import KERNEL_ATTR, TARGET_ATTR, LaunchOp, WarpReduceOp

WARP = 32


def _role(op: Operation) -> str | None:
    attr = op.attributes.get(LOOP_ATTR)
    return attr.data if isinstance(attr, StringAttr) else None


def _const_int(v: SSAValue) -> int | None:
    op = v.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr):
        return op.value.value.data
    return None


def _outermost(op: Operation, role: str) -> list[scf.ForOp]:
    """scf.for loops marked `role` that are not nested in another such loop."""
    found: list[scf.ForOp] = []

    def visit(o: Operation) -> None:
        for region in o.regions:
            for block in region.blocks:
                for inner in block.ops:
                    if isinstance(inner, scf.ForOp) and _role(inner) == role:
                        found.append(inner)
                    else:
                        visit(inner)

    visit(op)
    return found


@dataclass(frozen=True)
class GpuMapKernelsPass(ModulePass):
    """Turn each kernel's parallel loop nest into thread-indexed GPU code."""

    name = "gpu-map-kernels"

    threads_per_block: int = 256

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.threads_per_block % WARP or not 0 < self.threads_per_block <= 1024:
            raise PassFailedException(
                f"{self.name}: threads_per_block must be a multiple of 32 in 32..1024"
            )
        kernels = {
            f.sym_name.data: f
            for f in op.ops
            if isinstance(f, func.FuncOp) and KERNEL_ATTR in f.attributes
        }
        launches = [o for o in op.walk() if isinstance(o, LaunchOp)]
        # From here on the module's kernels are GPU code.
        op.attributes[TARGET_ATTR] = StringAttr("nvptx")
        for name, kernel in kernels.items():
            factor_and_dims = self.map_kernel(kernel)
            for launch in launches:
                if launch.kernel.root_reference.data == name:
                    self.rewrite_launch(launch, kernel, *factor_and_dims)

    # -- kernels ---------------------------------------------------------------

    def map_kernel(self, kernel: func.FuncOp) -> tuple[int, list[SSAValue]]:
        """Rewrite the kernel; return (threads per item, the inner parallel bounds)."""
        body = kernel.body.block
        loops = [o for o in body.ops if isinstance(o, scf.ParallelOp)]
        if len(loops) != 1:
            raise PassFailedException(
                f"{self.name}: kernel @{kernel.sym_name.data} must hold exactly one scf.parallel"
            )
        (loop,) = loops
        mapping_attr = loop.attributes.get(GPU_MAPPING_ATTR)
        mapping = mapping_attr.data if isinstance(mapping_attr, StringAttr) else "item"
        inner_ubs = list(loop.upperBound[1:])
        for lb, step in zip(loop.lowerBound[1:], loop.step[1:]):
            if _const_int(lb) != 0 or _const_int(step) != 1:
                raise PassFailedException(
                    f"{self.name}: inner parallel dimensions must run from 0 with step 1"
                )
        lanes_loops = _outermost(loop, "lanes") if mapping == "lanes" else []
        if mapping == "lanes":
            counts = {_const_int(lp.ub) for lp in lanes_loops}
            if not lanes_loops or None in counts or len(counts) != 1:
                raise PassFailedException(
                    f"{self.name}: a 'lanes' mapping needs lane loops of one constant trip count"
                )
            factor = counts.pop()
            assert factor is not None
        elif mapping == "warp":
            factor = WARP
        elif mapping == "item":
            factor = 1
        else:
            raise PassFailedException(f"{self.name}: unknown gpu mapping '{mapping}'")

        e = Emitter.before(loop)
        hi = body.args[1]
        tid = e.v(gpu.ThreadIdOp(gpu.DimensionAttr(gpu.DimensionEnum.X)))
        bid = e.v(gpu.BlockIdOp(gpu.DimensionAttr(gpu.DimensionEnum.X)))
        bdim = e.v(gpu.BlockDimOp(gpu.DimensionAttr(gpu.DimensionEnum.X)))
        gid = e.add(e.mul(bid, bdim), tid)
        in_range = e.cmpi("ult", gid, hi)
        with e.if_(in_range) as inner:
            lane = inner.remui(gid, factor) if factor > 1 else None
            item = inner.divui(gid, factor) if factor > 1 else gid
            # Decompose the item index, innermost dimension fastest.
            ivs: list[SSAValue] = []
            rest = item
            for ub in reversed(inner_ubs):
                ivs.append(inner.remui(rest, ub))
                rest = inner.divui(rest, ub)
            ivs.append(rest)
            ivs.reverse()
            value_map = dict(zip(loop.body.block.args, ivs))
            for op in loop.body.block.ops:
                if isinstance(op, scf.ReduceOp):
                    continue
                inner.op(op.clone(value_mapper=value_map))
        guard = loop.prev_op  # the scf.if just emitted before the loop
        Rewriter.erase_op(loop)
        assert isinstance(guard, scf.IfOp)
        if mapping == "lanes":
            assert lane is not None
            for lp in _outermost(guard, "lanes"):
                self.inline_lanes_loop(lp, lane)
        elif mapping == "warp":
            assert lane is not None
            for lp in _outermost(guard, "reduction"):
                self.split_across_warp(lp, lane)
        return factor, inner_ubs

    def inline_lanes_loop(self, loop: scf.ForOp, lane: SSAValue) -> None:
        if loop.iter_args:
            raise PassFailedException(f"{self.name}: lane loops must not carry values")
        block = loop.body.block
        value_map = {block.args[0]: lane}
        e = Emitter.before(loop)
        for op in block.ops:
            if isinstance(op, scf.YieldOp):
                continue
            e.op(op.clone(value_mapper=value_map))
        Rewriter.erase_op(loop)

    def inline_lanes_loop_carrying(self, loop: scf.ForOp, lane: SSAValue) -> None:
        """Replace a lane loop by one iteration for `lane`, its results by what it yields."""
        block = loop.body.block
        value_map: dict[SSAValue, SSAValue] = {block.args[0]: lane}
        value_map.update(zip(block.args[1:], loop.iter_args))
        e = Emitter.before(loop)
        yielded: list[SSAValue] = []
        for op in block.ops:
            if isinstance(op, scf.YieldOp):
                yielded = [value_map.get(v, v) for v in op.operands]
                continue
            clone = op.clone(value_mapper=value_map)
            e.op(clone)
        for r, v in zip(loop.results, yielded):
            r.replace_all_uses_with(v)
        Rewriter.erase_op(loop)

    def split_across_warp(self, loop: scf.ForOp, thread: SSAValue) -> None:
        if not all(isinstance(r.type, Float32Type) for r in loop.results):
            raise PassFailedException(
                f"{self.name}: warp-split reduction loops must accumulate f32 scalars"
            )
        e = Emitter.before(loop)
        lane_loops = _outermost(loop, "lanes")
        lanes = 1
        if lane_loops:
            counts = {_const_int(lp.ub) for lp in lane_loops}
            lanes = counts.pop() if len(counts) == 1 else None
            if lanes is None or WARP % lanes:
                raise PassFailedException(
                    f"{self.name}: lane loops inside a warp reduction need one constant "
                    "trip count dividing 32"
                )
        start = e.divui(thread, lanes) if lanes > 1 else thread
        loop.operands[0] = e.add(loop.lb, e.mul(start, loop.step))
        loop.operands[2] = e.mul(loop.step, WARP // lanes)
        if lanes > 1:
            lane = e.remui(thread, lanes)
            for lp in lane_loops:
                self.inline_lanes_loop_carrying(lp, lane)
        after = Emitter(_after(loop))
        for r in list(loop.results):
            total = after.v(WarpReduceOp(r))
            for use in list(r.uses):
                if use.operation is not total.owner:
                    use.operation.operands[use.index] = total

    # -- host launches ---------------------------------------------------------

    def rewrite_launch(
        self, launch: LaunchOp, kernel: func.FuncOp, factor: int, inner_ubs: list[SSAValue]
    ) -> None:
        """Launch `range * prod(inner bounds) * factor` threads."""
        e = Emitter.before(launch)
        kernel_args = list(kernel.body.block.args)
        total = launch.range
        for ub in inner_ubs:
            c = _const_int(ub)
            if c is not None:
                host_ub = e.index(c)
            elif ub in kernel_args and kernel_args.index(ub) >= 2:
                host_ub = launch.args[kernel_args.index(ub) - 2]
            else:
                raise PassFailedException(
                    f"{self.name}: an inner parallel bound of @{kernel.sym_name.data} is "
                    "computed inside the kernel; the host cannot size the grid"
                )
            total = e.mul(total, host_ub)
        total = e.mul(total, factor)
        new = LaunchOp(
            launch.kernel, list(launch.args), total, self.threads_per_block, self.threads_per_block
        )
        Rewriter.replace_op(launch, new)


def _after(op: Operation):
    from xdsl.rewriter import InsertPoint

    return InsertPoint.after(op)
