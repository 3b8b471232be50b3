"""lower-qnn-to-loops: qnn.matmul / qnn.add / qnn.mul on buffers become loops.

- `qnn.add` / `qnn.mul`: a parallel loop over the leading dimensions and a
  loop along the last one (vectors of 16 with `vectorize`, then a scalar
  tail); a broadcast operand is indexed at 0 along its size-1 dimensions.
- `qnn.matmul`: x [M, K] @ w [K, N]: parallel over tiles of 16 output columns;
  each tile accumulates `x[m, k] * w[k, tile]` along k as vector FMAs (the
  rows of w are contiguous), with a scalar path for a last partial tile.

```mlir
// before
qnn.add %a, %b outs(%c) : (memref<?x64xf32>, memref<64xf32>, memref<?x64xf32>) -> ()
// after (abridged)
scf.parallel (%i) = (%c0) to (%rows) step (%c1) {
  scf.for %j = %c0 to %c64 step %c16 {
    %x = vector.load %a[%i, %j] : memref<?x64xf32>, vector<16xf32>
    %y = vector.load %b[%j] : memref<64xf32>, vector<16xf32>
    %s = arith.addf %x, %y : vector<16xf32>
    vector.store %s, %c[%i, %j] : memref<?x64xf32>, vector<16xf32>
  }
} {qrt.loop = "rows"}
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import MemRefType, ModuleOp, TensorType, f32
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from quantir.compiler.lowering.emitter import Emitter, Value, vector_of
from quantir.compiler.lowering.loop_roles import role
from quantir.compiler.lowering.row_views import as_rows
from quantir.dialects import qnn

VECTOR = 16


def _shape(v: Value) -> list[int]:
    t = v.type
    assert isinstance(t, MemRefType)
    return list(t.get_shape())


def lower_elementwise(e: Emitter, op: qnn.AddOp | qnn.MulOp, vectorize: bool) -> None:
    out = op.out
    assert out is not None
    rank = len(_shape(out))
    combine = "addf" if isinstance(op, qnn.AddOp) else "mulf"

    def index_for(e: Emitter, v: Value, idx: Sequence[Value]) -> list[Value]:
        """Indices into `v` for result position `idx`, broadcasting size-1 dims."""
        shape = _shape(v)
        lead = rank - len(shape)
        zero = e.index(0)
        return [zero if s == 1 and rank > 0 else i for s, i in zip(shape, idx[lead:])]

    def row_body(e: Emitter, lead_ivs: Sequence[Value]) -> None:
        n = e.dim(out, rank - 1)

        def element(e: Emitter, j: Value, lanes: int) -> None:
            idx = [*lead_ivs, j]
            vals = []
            for v in (op.lhs, op.rhs):
                shape = _shape(v)
                if shape and shape[-1] == 1 and lanes > 1:
                    scalar = e.load(v, index_for(e, v, idx))
                    vals.append(e.broadcast(scalar, vector_of(f32, lanes)))
                else:
                    vals.append(e.vload(v, index_for(e, v, idx), lanes))
            e.vstore(getattr(e, combine)(vals[0], vals[1]), out, idx)

        tail_start: Value | int = 0
        if vectorize:
            full = e.sub(n, e.remui(n, VECTOR))
            e.for_(0, full, VECTOR, lambda ie, j, _c: element(ie, j, VECTOR))
            tail_start = full
        e.for_(tail_start, n, 1, lambda ie, j, _c: element(ie, j, 1))

    if rank == 1:
        e.parallel([0], [1], lambda ie, ivs: row_body(ie, []), role("rows"))
    else:
        ubs = [e.dim(out, i) for i in range(rank - 1)]
        e.parallel([0] * (rank - 1), ubs, row_body, role("rows"))


def lower_matmul(e: Emitter, op: qnn.MatmulOp, vectorize: bool) -> None:
    assert op.out is not None
    x, y, w = as_rows(e, op.lhs), as_rows(e, op.out), op.rhs
    k = _shape(w)[0]
    m = e.dim(x, 0)
    n = e.dim(w, 1)

    def dot(e: Emitter, row: Value, col: Value, lanes: int) -> None:
        acc_t = vector_of(f32, lanes)

        def k_body(e: Emitter, kk: Value, c: Sequence[Value]):
            xv = e.broadcast(e.load(x, [row, kk]), acc_t)
            return [e.fma(xv, e.vload(w, [kk, col], lanes), c[0])]

        (acc,) = e.for_(0, k, 1, k_body, [e.const(0.0, acc_t)], role("reduction"))
        e.vstore(acc, y, [row, col])

    if not vectorize:
        e.parallel([0, 0], [m, n], lambda ie, ivs: dot(ie, ivs[0], ivs[1], 1), role("rows"))
        return
    tiles = e.divui(e.add(n, VECTOR - 1), VECTOR)

    def tile_body(e: Emitter, ivs: Sequence[Value]) -> None:
        col0 = e.mul(ivs[0], VECTOR)
        full = e.cmpi("ule", e.add(col0, VECTOR), n)
        rows = lambda ie, fn: ie.for_(0, m, 1, lambda je, r, _c: fn(je, r))  # noqa: E731
        with e.if_(full) as then:
            rows(then, lambda je, r: dot(je, r, col0, VECTOR))
        partial = e.cmpi("ugt", e.add(col0, VECTOR), n)
        with e.if_(partial) as other:
            rows(
                other,
                lambda je, r: je.for_(col0, n, 1, lambda ke, c, _c: dot(ke, r, c, 1)),
            )

    e.parallel([0], [tiles], tile_body, role("rows"))


@dataclass(frozen=True)
class LowerQnnToLoopsPass(ModulePass):
    """Expand qnn ops on buffers into loops (see module docs)."""

    name = "lower-qnn-to-loops"

    vectorize: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for qop in [o for o in op.walk() if isinstance(o, qnn._BinaryGraphOp)]:
            if qop.out is None or any(isinstance(v.type, TensorType) for v in qop.operands):
                raise PassFailedException(
                    f"{self.name}: '{qop.name}' is on tensors; run quantir-bufferize first"
                )
            e = Emitter.before(qop)
            if isinstance(qop, qnn.MatmulOp):
                lower_matmul(e, qop, self.vectorize)
            else:
                lower_elementwise(e, qop, self.vectorize)
            qop.detach()
            qop.erase()
