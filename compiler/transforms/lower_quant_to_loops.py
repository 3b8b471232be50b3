"""lower-quant-to-loops: quant.dequantize / quant.gather / quant.qmatmul on buffers
become loops.

Each op is replaced by loop nests (scf.parallel over rows, scf.for over
blocks, arith/memref/vector ops) that unpack its packed operand explicitly,
through the per-encoding layouts in `quantir.compiler.encodings`. A gather
is the dequantize nest over the rows its indices name. Run
`quantir-bufferize` first: the ops must be in their `outs(...)` form.

Ops that are equal (same kind, attributes and operand types: a model's
layers repeat a few shapes) are lowered once; the others get a clone of that
loop nest with their own operands, which costs a fraction of building it.
With `outline=true` (the named pipelines) the nests of each distinct op are
outlined into kernels as `outline-kernels` would outline them, and every op
equal to it launches those kernels: a graph of a hundred ops of seven shapes
builds seven sets of loops, and the host function gets a few launches per op
(nothing for `canonicalize` and `cse` to chew on).

Options:
- `vectorize` (default true): unpack the lanes of a block as vector ops (the
  CPU path). With false, lanes become scalar loops marked `qrt.loop = "lanes"`
  (the GPU path maps them onto threads).
- `m_tile` (default 4): how many rows of x a qmatmul reuses each unpacked
  weight for.
- `int8` (default true): with `vectorize`, qmatmul over GGUF formats (and
  GPTQ without desc_act, groups of whole 32-element blocks: `gptq_int8.py`)
  quantizes x to int8 blocks once per call and multiplies integer codes
  with integer dot products (`qrt.dot_u8i8`; normwise relative error about
  1e-3 to 1e-2 against float64, see `lowering/gguf_int8.py`). With false,
  it unpacks weights to float and multiplies exact x (the exact path).
- `amx` (default "off"): "on" lets GGUF qmatmul on the int8 path take AMX
  tiles (`amx.tile_muli`, `lowering/gguf_amx.py`) for calls with at least 16
  (or 32) rows of x; "auto" does so when this process may run AMX code
  (`cpu_codegen.amx_usable`) and the weight has at least a million weights
  or a dynamic N (the `quantir-cpu` pipeline's choice); "off" keeps vector
  dot products only.
- `gptq_chunk` (default 1024): how many adjacent GPTQ columns one vectorized
  qmatmul task streams through together (a multiple of 16).
- `outline` (default false): outline the loop nests of each distinct op into
  kernels (`outline-kernels`' kernels, named `<function>_kernel<N>`) shared
  by every equal op, which launches them (`qrt.launch`) instead.

```mlir
// before
quant.dequantize #quant.encoding<q8_0> %w outs(%y) : (memref<?x34xi8>, memref<?x32xf32>) -> ()
// after (vectorize=false, abridged)
scf.parallel (%n, %b) = (%c0, %c0) to (%rows, %c1) step (%c1, %c1) {
  %d = ... load the fp16 scale ...
  scf.for %l = %c0 to %c32 step %c1 {
    %q = memref.load %w[%n, %col] : memref<?x34xi8>
    %v = arith.mulf %d, %qf : f32
    memref.store %v, %y[%n, %e] : memref<?x32xf32>
  } {qrt.loop = "lanes"}
} {qrt.loop = "rows"}
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, func, scf
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import is_side_effect_free
from xdsl.utils.exceptions import PassFailedException

from quantir.compiler.encodings import layout_for
from quantir.compiler.lowering import gguf_amx, gguf_int8, gguf_kernels, gptq_kernels
from quantir.compiler.lowering.emitter import Emitter
from quantir.compiler.lowering.row_views import as_rows, as_vector
from quantir.compiler.transforms.outline_kernels import KernelOutliner
from quantir.dialects import quant
from quantir.dialects.encoding import QuantizationEncoding


def _lowering_key(qop: Operation) -> tuple:
    """What a quant op's lowering depends on: its kind, attributes and operand types."""
    props = tuple(sorted((k, str(v)) for k, v in qop.properties.items()))
    return (qop.name, props, tuple(str(v.type) for v in qop.operands))


def _ops_between(first_exclusive: Operation | None, last_exclusive: Operation) -> list[Operation]:
    """The ops of last_exclusive's block strictly between the two (from the block start
    when the first is None)."""
    block = last_exclusive.parent_block()
    assert block is not None
    cur = first_exclusive.next_op if first_exclusive is not None else block.first_op
    ops = []
    while cur is not None and cur is not last_exclusive:
        ops.append(cur)
        cur = cur.next_op
    return ops


def _clone_before(anchor: Operation, ops: list[Operation], mapping: dict) -> None:
    """Clone `ops` (a lowering) before `anchor`, their outside values renamed by `mapping`.

    An op without effects or regions whose operands the renaming leaves alone
    (a constant, a size of the same x) would compute the value it already has
    earlier in the block: the clones use that one instead of a copy, which
    spares making the copy and erasing it again (share-launches, cse)."""
    block = anchor.parent_block()
    for o in ops:
        if (
            o.parent_block() is block
            and not o.regions
            and all(mapping.get(v, v) is v for v in o.operands)
            and is_side_effect_free(o)
        ):
            continue
        Rewriter.insert_op(o.clone(value_mapper=mapping), InsertPoint.before(anchor))


def _outline_nests(
    qop: Operation, ops: list[Operation], outliner: KernelOutliner
) -> list[Operation]:
    """Outline the top-level loop nests among `ops` (one op's fresh lowering) into
    kernels; return the ops that now stand for the lowering (launches among them)."""
    host = qop.parent_op()
    if not isinstance(host, func.FuncOp) or host.parent is not outliner.module.body.block:
        raise PassFailedException(
            f"lower-quant-to-loops{{outline=true}}: '{qop.name}' must be in a top-level function"
        )
    ops = [outliner.outline(o, host) if isinstance(o, scf.ParallelOp) else o for o in ops]
    # The constants only the nests used now live in the kernels: drop them
    # here, or every equal op would get a copy for canonicalize to delete.
    kept = []
    for o in ops:
        if isinstance(o, arith.ConstantOp) and not o.result.uses:
            o.detach()
            o.erase()
        else:
            kept.append(o)
    return kept


@dataclass(frozen=True)
class LowerQuantToLoopsPass(ModulePass):
    """Expand quant ops on buffers into explicit block-unpacking loops."""

    name = "lower-quant-to-loops"

    vectorize: bool = True
    m_tile: int = 4
    int8: bool = True
    amx: str = "off"
    gptq_chunk: int = 1024
    outline: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.m_tile < 1:
            raise PassFailedException(f"{self.name}: m_tile must be >= 1, got {self.m_tile}")
        if self.amx not in ("on", "off", "auto"):
            raise PassFailedException(f"{self.name}: amx must be on, off or auto, got {self.amx!r}")
        if self.gptq_chunk < 16 or self.gptq_chunk % 16:
            raise PassFailedException(
                f"{self.name}: gptq_chunk must be a positive multiple of 16, got {self.gptq_chunk}"
            )
        # A graph repeats few distinct ops (every layer's matmuls have the same
        # shapes): each distinct op is lowered once and its loops are cloned,
        # operands remapped, for the ops equal to it (cloning costs a fraction
        # of building the loop nests again).
        lowered: dict[tuple, tuple[list[Operation], list[SSAValue]]] = {}
        outliner = KernelOutliner(op)
        quant_ops = (quant.DequantizeOp, quant.GatherOp, quant.QMatmulOp)
        for qop in [o for o in op.walk() if isinstance(o, quant_ops)]:
            if qop.out is None or any(isinstance(v.type, TensorType) for v in qop.operands):
                raise PassFailedException(
                    f"{self.name}: '{qop.name}' is on tensors; run quantir-bufferize first"
                )
            key = _lowering_key(qop)
            if key in lowered:
                ops, operands = lowered[key]
                _clone_before(qop, ops, dict(zip(operands, qop.operands)))
            else:
                before = qop.prev_op
                e = Emitter.before(qop)
                encoding = qop.encoding.encoding
                if isinstance(qop, quant.DequantizeOp):
                    self.lower_dequantize(e, encoding, qop)
                elif isinstance(qop, quant.GatherOp):
                    self.lower_gather(e, encoding, qop)
                else:
                    self.lower_qmatmul(e, encoding, qop)
                ops = _ops_between(before, qop)
                if self.outline:
                    ops = _outline_nests(qop, ops, outliner)
                lowered[key] = (ops, list(qop.operands))
            qop.detach()
            qop.erase()

    def _use_amx(self) -> bool:
        if self.amx == "auto":
            from quantir.compiler.backend.cpu_codegen import amx_usable

            return amx_usable()
        return self.amx == "on"

    def lower_dequantize(
        self, e: Emitter, encoding: QuantizationEncoding, op: quant.DequantizeOp
    ) -> None:
        assert op.out is not None
        if encoding is QuantizationEncoding.GPTQ:
            assert op.config is not None
            gptq_kernels.lower_dequantize(e, op.config, list(op.packed), op.out, self.vectorize)
        else:
            gguf_kernels.lower_dequantize(
                e, layout_for(encoding), op.packed[0], op.out, self.vectorize
            )

    def lower_gather(self, e: Emitter, encoding: QuantizationEncoding, op: quant.GatherOp) -> None:
        assert op.out is not None and encoding.is_gguf  # the verifier refuses GPTQ
        indices, out = as_vector(e, op.indices), as_rows(e, op.out)
        gguf_kernels.lower_dequantize(
            e, layout_for(encoding), op.table, out, self.vectorize, indices
        )

    def lower_qmatmul(
        self, e: Emitter, encoding: QuantizationEncoding, op: quant.QMatmulOp
    ) -> None:
        assert op.out is not None
        x, y = as_rows(e, op.x), as_rows(e, op.out)
        if encoding is QuantizationEncoding.GPTQ:
            assert op.config is not None
            gptq_kernels.lower_qmatmul(
                e,
                op.config,
                x,
                list(op.packed),
                y,
                self.vectorize,
                self.m_tile,
                self.gptq_chunk,
                self.int8,
            )
            return
        layout = layout_for(encoding)
        if self.vectorize and self.int8 and gguf_int8.int8_supported(layout):
            gguf_int8.lower_qmatmul_int8(
                e,
                layout,
                x,
                op.packed[0],
                y,
                self.m_tile,
                self._use_amx(),
                gguf_amx.AUTO_MIN_WEIGHTS if self.amx == "auto" else 0,
            )
        else:
            gguf_kernels.lower_qmatmul(e, layout, x, op.packed[0], y, self.vectorize, self.m_tile)
