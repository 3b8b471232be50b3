"""share-launches: a launch that recomputes an earlier launch's buffers reuses them.

In a model, several quant ops read the same x: a transformer's q, k and v
projections (and gate and up) take one normalized activation. On the
integer path each qmatmul quantizes its x to int8 blocks first (a launch of
the x-quantizing kernel into fresh buffers), so equal work is launched once
per op. This pass, on each host function's top level, in order:

1. value-numbers the side-effect-free ops without regions (constants,
   `memref.dim`, index arithmetic, views): an op equal to an earlier one
   (same name, operands, attributes and result types) is replaced by it, so
   that equal sizes and views become one value;
2. drops a `qrt.launch` that repeats an earlier one: same kernel, range and
   inputs (the arguments the kernel only reads), where both write only fresh
   `memref.alloc` buffers of the same sizes that nothing else writes (every
   other use reads them, or deallocates them), and no launch in between wrote
   any of the inputs. The later launch's buffers are replaced by the earlier
   one's and their allocations dropped; the earlier buffers are freed where
   the later ones were (the last of the two deallocations).

Which arguments a kernel writes is read from its body: an argument is only
read when every use of it (and of every view of it) is an op whose memory
effects are all reads; anything else counts as a write.

```mlir
// before
%q0 = memref.alloc(%m) : memref<?x256xi8>
qrt.launch @f_kernel0(%x, %q0) range(%m) : memref<?x256xf32>, memref<?x256xi8>
qrt.launch @f_kernel1(%q0, %wa, %ya) range(%c2) : ...
memref.dealloc %q0 : memref<?x256xi8>
%q1 = memref.alloc(%m) : memref<?x256xi8>
qrt.launch @f_kernel0(%x, %q1) range(%m) : memref<?x256xf32>, memref<?x256xi8>
qrt.launch @f_kernel1(%q1, %wb, %yb) range(%c2) : ...
memref.dealloc %q1 : memref<?x256xi8>
// after
%q0 = memref.alloc(%m) : memref<?x256xi8>
qrt.launch @f_kernel0(%x, %q0) range(%m) : memref<?x256xf32>, memref<?x256xi8>
qrt.launch @f_kernel1(%q0, %wa, %ya) range(%c2) : ...
qrt.launch @f_kernel1(%q0, %wb, %yb) range(%c2) : ...
memref.dealloc %q0 : memref<?x256xi8>
```

It runs after the kernels are outlined and before `canonicalize`, which then
has a shorter host function to walk: on a 127-op model graph the host
function loses about half its ops. Buffers shared this way live from the
first launch to the last use of either, a few bytes per row of x.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import MemoryEffectKind, get_effects

from quantir.dialects.qrt import KERNEL_ATTR, LaunchOp

_READ_ONLY = frozenset({MemoryEffectKind.READ})

# Ops that only read their buffer operand but declare no such effect: xDSL
# gives vector.load no effects at all (unknown), and amx.tile_load declares a
# write, as upstream does, to the tile register it fills, not to the buffer.
_READS_BUFFER = frozenset(
    {
        "vector.load",
        "vector.maskedload",
        "vector.transfer_read",
        "vector.gather",
        "memref.prefetch",
        "qrt.prefetch",
        "amx.tile_load",
    }
)


def written_arguments(kernel: func.FuncOp) -> frozenset[int]:
    """Positions (in a launch's argument list) of the buffers `kernel` may write.

    A buffer argument is only read when every use of it is a read (an op whose
    known effects are all reads, or one of `_READS_BUFFER`), `memref.dim`, or an
    op without effects whose results are all buffers (a view), whose uses are
    checked the same way. Anything else counts as a write: unknown effects,
    writes, frees, and an op that turns the buffer into something else (a
    pointer could be written through)."""
    written = set()
    for position, arg in enumerate(kernel.body.block.args[2:]):
        if isinstance(arg.type, MemRefType) and _may_write(arg):
            written.add(position)
    return frozenset(written)


def _may_write(value: SSAValue) -> bool:
    pending, seen = [value], {value}
    while pending:
        for use in pending.pop().uses:
            op = use.operation
            if op.name in _READS_BUFFER or isinstance(op, memref.DimOp):
                continue
            effects = get_effects(op)
            if effects is None or any(e.kind not in _READ_ONLY for e in effects):
                return True
            if effects:
                continue  # reads only (memref.load)
            if not op.results or not all(isinstance(r.type, MemRefType) for r in op.results):
                return True
            for result in op.results:  # a view of the buffer: its uses count too
                if result not in seen:
                    seen.add(result)
                    pending.append(result)
    return False


def _root(value: SSAValue) -> SSAValue:
    """The buffer a host value views: through side-effect-free ops to an argument or
    an op with effects (an allocation)."""
    while isinstance(value.owner, Operation):
        op = value.owner
        effects = get_effects(op)
        sources = [v for v in op.operands if isinstance(v.type, MemRefType)]
        if effects is None or effects or len(sources) != 1:
            break
        value = sources[0]
    return value


def _pure_key(op: Operation) -> tuple | None:
    """What makes two side-effect-free ops without regions equal, or None for other ops."""
    if op.regions or op.successors or not op.results:
        return None
    effects = get_effects(op)
    if effects is None or effects:
        return None
    return (
        op.name,
        tuple(op.operands),
        tuple(sorted(op.properties.items())),
        tuple(sorted(op.attributes.items())),
        tuple(r.type for r in op.results),
    )


@dataclass
class _Launched:
    """An earlier launch whose written buffers a later equal launch may reuse."""

    launch: LaunchOp
    index: int  # its position among the block's ops
    buffers: list[SSAValue]  # at the written positions
    roots: list[SSAValue]  # of its inputs


class _HostSharing:
    def __init__(self, module: ModuleOp) -> None:
        self._kernels = {
            f.sym_name.data: f
            for f in module.ops
            if isinstance(f, func.FuncOp) and KERNEL_ATTR in f.attributes
        }
        self._written: dict[str, frozenset[int] | None] = {}

    def written(self, launch: LaunchOp) -> frozenset[int] | None:
        """The launch's written argument positions; None when its kernel is not in the module."""
        name = launch.kernel.string_value()
        if name not in self._written:
            kernel = self._kernels.get(name)
            self._written[name] = None if kernel is None else written_arguments(kernel)
        return self._written[name]

    def run(self, block: Block) -> None:
        ops = list(block.ops)
        self._order = {op: i for i, op in enumerate(ops)}
        self._erased: set[Operation] = set()
        values: dict[tuple, Operation] = {}
        launched: dict[tuple, _Launched] = {}
        last_write: dict[SSAValue, int] = {}  # buffer root -> position of its last writer
        for index, op in enumerate(ops):
            if op in self._erased:
                continue
            key = _pure_key(op)
            if key is not None:
                same = values.get(key)
                if same is None:
                    values[key] = op
                else:
                    for result, kept in zip(op.results, same.results, strict=True):
                        result.replace_all_uses_with(kept)
                    op.detach()
                    op.erase()
                continue
            if isinstance(op, LaunchOp):
                self._launch(op, index, launched, last_write)
            elif _may_write_host_buffers(op):
                launched.clear()  # an op that may write anything: forget what is known

    def _launch(
        self,
        op: LaunchOp,
        index: int,
        launched: dict[tuple, _Launched],
        last_write: dict[SSAValue, int],
    ) -> None:
        written = self.written(op)
        args = list(op.args)
        if written is None:  # an unknown kernel may write any of its buffers
            for arg in args:
                if isinstance(arg.type, MemRefType):
                    last_write[_root(arg)] = index
            return
        inputs = tuple(a for i, a in enumerate(args) if i not in written)
        buffers = [a for i, a in enumerate(args) if i in written]
        key = (tuple(sorted(op.properties.items())), op.range, inputs)
        earlier = launched.get(key)
        if earlier is not None and self._share(op, buffers, earlier, last_write):
            return
        for buffer in buffers:
            last_write[_root(buffer)] = index
        if buffers and len(set(buffers)) == len(buffers):
            if all(self._holds_one_write(b, op) for b in buffers):
                launched[key] = _Launched(op, index, buffers, [_root(a) for a in inputs])

    def _share(
        self,
        op: LaunchOp,
        buffers: list[SSAValue],
        earlier: _Launched,
        last_write: dict[SSAValue, int],
    ) -> bool:
        """Reuse `earlier`'s buffers for `op` when nothing wrote its inputs since."""
        if any(last_write.get(root, -1) > earlier.index for root in earlier.roots):
            return False
        if len(set(buffers)) != len(buffers):
            return False
        if not all(self._holds_one_write(b, op) for b in buffers):
            return False
        if not all(_same_allocation(b, e) for b, e in zip(buffers, earlier.buffers)):
            return False
        frees = [(_dealloc_of(b), _dealloc_of(e)) for b, e in zip(buffers, earlier.buffers)]
        if any(ours is None or theirs is None for ours, theirs in frees):
            return False
        op.detach()
        op.erase()
        for buffer, shared, (ours, theirs) in zip(buffers, earlier.buffers, frees, strict=True):
            assert ours is not None and theirs is not None
            # The shared buffer is freed where the later of the two was.
            if self._order[ours] > self._order[theirs]:
                theirs.detach()
                theirs.erase()
                ours.operands = (shared,)
            else:
                ours.detach()
                ours.erase()
                self._erased.add(ours)  # not reached yet by run()'s walk
            buffer.replace_all_uses_with(shared)
            alloc = buffer.owner
            assert isinstance(alloc, memref.AllocOp)
            alloc.detach()
            alloc.erase()
        return True

    def _holds_one_write(self, buffer: SSAValue, writer: LaunchOp) -> bool:
        """Whether `buffer` is an allocation of the host block that `writer` writes
        and every other use reads (or frees, once), so that it holds what
        `writer` wrote from the allocation on."""
        alloc = buffer.owner
        if not isinstance(alloc, memref.AllocOp) or alloc not in self._order:
            return False
        frees = 0
        for use in buffer.uses:
            user = use.operation
            if user is writer:
                continue
            if isinstance(user, memref.DeallocOp):
                frees += 1
            elif not isinstance(user, LaunchOp) or user not in self._order:
                return False
            else:
                written = self.written(user)
                if written is None or use.index in written:
                    return False
        return frees <= 1


def _may_write_host_buffers(op: Operation) -> bool:
    """Whether a host op other than a launch may write a buffer: allocations and
    frees do not change contents; an op without buffer operands or regions has
    no buffer to write (a `qrt.check` reads one flag)."""
    if isinstance(op, memref.AllocOp | memref.DeallocOp):
        return False
    if not op.regions and not any(isinstance(v.type, MemRefType) for v in op.operands):
        return False
    effects = get_effects(op)
    return effects is None or any(e.kind not in _READ_ONLY for e in effects)


def _same_allocation(a: SSAValue, b: SSAValue) -> bool:
    x, y = a.owner, b.owner
    return (
        isinstance(x, memref.AllocOp)
        and isinstance(y, memref.AllocOp)
        and a.type == b.type
        and tuple(x.operands) == tuple(y.operands)
        and x.properties == y.properties
        and x.attributes == y.attributes
    )


def _dealloc_of(buffer: SSAValue) -> memref.DeallocOp | None:
    for use in buffer.uses:
        if isinstance(use.operation, memref.DeallocOp):
            return use.operation
    return None


@dataclass(frozen=True)
class ShareLaunchesPass(ModulePass):
    """Launch equal work once: a launch repeating an earlier one reuses its buffers."""

    name = "share-launches"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        sharing = _HostSharing(op)
        for host in list(op.ops):
            if isinstance(host, func.FuncOp) and not host.is_declaration:
                if KERNEL_ATTR not in host.attributes:
                    sharing.run(host.body.block)
