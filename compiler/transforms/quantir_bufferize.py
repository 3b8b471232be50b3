"""quantir-bufferize: graph functions on tensors become functions on buffers.

Each graph function `f(inputs) -> results` becomes
`f(input buffers, weight buffers, output buffers)`:

- tensor arguments become memref arguments of the same shape (packed bytes
  `ui8` become signless `i8`), tagged `qrt.input = i`;
- every `quant.weight` becomes a memref argument tagged with the weight's
  name (and, for encoded weights, encoding, logical shape and GPTQ config),
  so the runtime binds weight data by name;
- every result becomes an output argument tagged `qrt.output = i`; dynamic
  output dimensions record which input dimension they equal
  (`qrt.result_dims`), so a caller can size them before the call;
- an argument that holds `quant.gather` indices records the arguments
  whose rows it indexes (`qrt.row_indices`), so the runtime can check the
  values before the call;
- ops switch to their destination-passing form, writing into the output
  argument when their value is returned, else into a `memref.alloc`ed
  buffer that is freed after its last use.

```mlir
// before
func.func @f(%x: tensor<?x256xf32>) -> tensor<?x64xf32> {
  %w = quant.weight "w" #quant.encoding<q4_0> [64, 256] : tensor<64x144xui8>
  %y = quant.qmatmul #quant.encoding<q4_0> %x, %w
      : (tensor<?x256xf32>, tensor<64x144xui8>) -> tensor<?x64xf32>
  func.return %y : tensor<?x64xf32>
}
// after
func.func @f(%x: memref<?x256xf32> {qrt.input = 0 : i64},
             %w: memref<64x144xi8> {quant.weight = "w", ...},
             %y: memref<?x64xf32> {qrt.output = 0 : i64, qrt.result_dims = array<i64: 0, 0>}) {
  quant.qmatmul #quant.encoding<q4_0> %x, %w outs(%y) : (...) -> ()
  func.return
}
```
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from quantir.compiler.lowering.emitter import Emitter
from quantir.dialects import quant
from quantir.dialects.destination_style import DestinationStyleOp
from quantir.dialects.qrt import (
    INPUT_ATTR,
    OUTPUT_ATTR,
    RESULT_DIMS_ATTR,
    ROW_INDICES_ATTR,
    WEIGHT_ATTR,
    WEIGHT_CONFIG_ATTR,
    WEIGHT_ENCODING_ATTR,
    WEIGHT_PART_ATTR,
    WEIGHT_SHAPE_ATTR,
    CheckOp,
)

DimSource = tuple[int, int]
"""(function argument index, dimension) a dynamic dimension equals."""
Dim = int | DimSource


def buffer_type(t: TensorType) -> MemRefType:
    elem = t.element_type
    if isinstance(elem, IntegerType) and elem.signedness.data == Signedness.UNSIGNED:
        elem = IntegerType(elem.width.data)  # bytes are signless in memory
    return MemRefType(elem, t.get_shape())


def _is_graph_function(f: func.FuncOp) -> bool:
    types = [*f.function_type.inputs.data, *f.function_type.outputs.data]
    uses_quant = any(isinstance(op, quant.WeightOp | DestinationStyleOp) for op in f.walk())
    return any(isinstance(t, TensorType) for t in types) or uses_quant


class _FunctionBufferizer:
    def __init__(self, f: func.FuncOp):
        self.f = f
        self.block = Block()
        self.e = Emitter.at_end(self.block)
        self.arg_attrs: list[dict[str, Attribute]] = []
        self.buffers: dict[SSAValue, SSAValue] = {}  # tensor value -> its buffer
        self.dims: dict[SSAValue, list[Dim]] = {}  # tensor -> its dimensions
        self.arg_memrefs: list[SSAValue] = []

    def fail(self, msg: str) -> None:
        raise PassFailedException(f"quantir-bufferize: @{self.f.sym_name.data}: {msg}")

    def new_arg(self, t: Attribute, attrs: dict[str, Attribute]) -> SSAValue:
        arg = self.block.insert_arg(t, len(self.block.args))
        self.arg_attrs.append(attrs)
        self.arg_memrefs.append(arg)
        return arg

    # -- dynamic dimensions ---------------------------------------------------
    #
    # Every tensor dimension is tracked as a Dim: its static size, or the
    # (argument, dimension) it equals. Where an op needs two dimensions to
    # agree and types cannot prove it, a run-time `qrt.check` is emitted
    # (the runtime runs every check before any kernel).

    def dim_value(self, d: Dim) -> SSAValue:
        if isinstance(d, int):
            return self.e.index(d)
        return self.e.dim(self.arg_memrefs[d[0]], d[1])

    def check(self, a: Dim, b: Dim, what: str, fa: int = 1, fb: int = 1) -> None:
        """Emit a check that a*fa == b*fb (nothing when both sides are static)."""
        if isinstance(a, int) and isinstance(b, int):
            return
        if a == b and fa == fb:
            return
        e = self.e
        lhs = e.mul(self.dim_value(a), fa)
        rhs = e.mul(self.dim_value(b), fb)
        e.op(CheckOp(e.cmpi("eq", lhs, rhs), what))

    def unify(self, dims: list[Dim], what: str) -> Dim:
        """The common value of `dims` (checking at run time that they agree)."""
        static = [d for d in dims if isinstance(d, int)]
        chosen = static[0] if static else dims[0]
        for d in dims:
            self.check(d, chosen, what)
        return chosen

    def sizes_for(self, t: TensorType, dims: list[Dim]) -> list[SSAValue]:
        return [self.dim_value(d) for s, d in zip(t.get_shape(), dims) if s == DYNAMIC_INDEX]

    def dims_of(self, v: SSAValue) -> list[Dim]:
        return self.dims[v]

    def result_dims(self, op: DestinationStyleOp) -> list[Dim]:
        """The dimensions of op's result, with the checks its operands need."""
        res = op.results[0]
        assert isinstance(res.type, TensorType)
        declared = list(res.type.get_shape())
        inferred = op.infer_result_dims([self.dims_of(v) for v in op.inputs], self)
        out = []
        for i, (want, got) in enumerate(zip(declared, inferred)):
            if want == DYNAMIC_INDEX:
                out.append(got)
            else:
                self.check(got, want, f"{op.name}: result dimension {i} must be {want}")
                out.append(want)
        return out

    # -- the function ---------------------------------------------------------

    def run(self) -> func.FuncOp:
        f = self.f
        old_block = f.body.block
        for i, a in enumerate(old_block.args):
            if not isinstance(a.type, TensorType):
                self.fail(f"argument {i} has type {a.type}: graph functions take tensors")
            new = self.new_arg(buffer_type(a.type), {INPUT_ATTR: IntegerAttr(i, i64)})
            new.name_hint = a.name_hint
            self.buffers[a] = new
            self.dims[a] = [
                (i, d) if size == DYNAMIC_INDEX else size
                for d, size in enumerate(a.type.get_shape())
            ]

        ret = old_block.last_op
        if not isinstance(ret, func.ReturnOp):
            self.fail("the body must end with func.return")
        for i, v in enumerate(ret.arguments):
            if not isinstance(v.type, TensorType):
                self.fail(f"result {i} has type {v.type}: graph functions return tensors")

        # Weights first: they become arguments placed after the inputs.
        for op in old_block.ops:
            if isinstance(op, quant.WeightOp):
                self.bind_weight(op)

        # Which values are returned, and where: a value returned once is
        # computed straight into its output buffer.
        counts = Counter(ret.arguments)
        produced = {
            r for op in old_block.ops if not isinstance(op, quant.WeightOp) for r in op.results
        }
        returned_once: dict[SSAValue, int] = {}
        out_args: dict[int, SSAValue] = {}
        # Output arguments get their result-dims attribute after the ops are
        # walked (the dim sources are known then), but ops need them as
        # destinations: create them now.
        for i, v in enumerate(ret.arguments):
            out_args[i] = self.new_arg(buffer_type(v.type), {OUTPUT_ATTR: IntegerAttr(i, i64)})
            out_args[i].name_hint = f"out{i}"
            if v in produced and counts[v] == 1:
                returned_once[v] = i

        last_use = self.last_uses(old_block)
        for op in old_block.ops:
            if isinstance(op, quant.WeightOp | func.ReturnOp):
                continue
            if not isinstance(op, DestinationStyleOp):
                self.fail(f"'{op.name}' is not a graph op quantir can bufferize")
            if op.out is not None:
                self.fail(f"'{op.name}' is already on buffers")
            res = op.results[0]
            assert isinstance(res.type, TensorType)
            dims = self.result_dims(op)
            self.dims[res] = dims
            if res in returned_once:
                dest = out_args[returned_once[res]]
            else:
                dest = self.e.v(
                    memref.AllocOp(self.sizes_for(res.type, dims), [], buffer_type(res.type))
                )
            if dest.name_hint is None:
                dest.name_hint = res.name_hint
            self.emit_on_buffers(op, dest)
            self.buffers[res] = dest
            for dead in last_use.get(op, []):
                if dead not in returned_once and dead in produced:
                    self.e.op(memref.DeallocOp.get(self.buffers[dead]))

        for i, v in enumerate(ret.arguments):
            if returned_once.get(v) != i:
                self.e.op(memref.CopyOp(self.buffers[v], out_args[i]))
            t = v.type
            assert isinstance(t, TensorType)
            flat: list[int] = []
            for d, dim in zip(t.get_shape(), self.dims[v]):
                if d == DYNAMIC_INDEX:
                    if isinstance(dim, int):
                        self.fail(f"result {i} has a dynamic dimension of known size {dim}")
                    flat.extend(dim)
            if flat:
                idx = self.arg_memrefs.index(out_args[i])
                self.arg_attrs[idx][RESULT_DIMS_ATTR] = DenseArrayBase.from_list(i64, flat)
        # Buffers still live at the end (values only returned by copy) are
        # freed, in the order they are returned (the output is deterministic).
        for v in dict.fromkeys(ret.arguments):
            if v not in produced or v in returned_once:
                continue
            self.e.op(memref.DeallocOp.get(self.buffers[v]))
        self.e.op(func.ReturnOp())

        new = func.FuncOp(
            f.sym_name.data,
            ([a.type for a in self.block.args], []),
            Region(self.block),
            f.sym_visibility,
            arg_attrs=ArrayAttr([DictionaryAttr(a) for a in self.arg_attrs]),
        )
        for k, v in f.attributes.items():
            new.attributes[k] = v
        return new

    def last_uses(self, block: Block) -> dict[Operation, list[SSAValue]]:
        """For each op, the values whose last use it is."""
        last: dict[SSAValue, Operation] = {}
        for op in block.ops:
            for o in op.operands:
                last[o] = op
        by_op: dict[Operation, list[SSAValue]] = {}
        for v, op in last.items():
            by_op.setdefault(op, []).append(v)
        return by_op

    def bind_weight(self, op: quant.WeightOp) -> None:
        parts = quant.packed_operand_names(op.encoding.encoding) if op.encoding else ("",)
        for part, res in zip(parts, op.results_):
            attrs: dict[str, Attribute] = {WEIGHT_ATTR: op.weight_name}
            if op.encoding is not None:
                attrs[WEIGHT_ENCODING_ATTR] = op.encoding
                if op.shape is not None:
                    attrs[WEIGHT_SHAPE_ATTR] = op.shape
                if op.config is not None:
                    attrs[WEIGHT_CONFIG_ATTR] = op.config
                if len(op.results_) > 1:
                    attrs[WEIGHT_PART_ATTR] = StringAttr(part)
            assert isinstance(res.type, TensorType)
            arg = self.new_arg(buffer_type(res.type), attrs)
            arg.name_hint = res.name_hint
            self.buffers[res] = arg
            self.dims[res] = list(res.type.get_shape())

    def emit_on_buffers(self, op: DestinationStyleOp, dest: SSAValue) -> None:
        self.e.op(op.on_buffers([self.buffers[v] for v in op.inputs], dest))
        if isinstance(op, quant.GatherOp):
            self.mark_row_indices(op)

    def mark_row_indices(self, op: quant.GatherOp) -> None:
        """Tag the indices argument with the table argument it indexes, so that the
        runtime checks the values before any kernel runs (kernels only clamp)."""
        indices, table = self.buffers[op.indices], self.buffers[op.table]
        # Graphs have no op that produces integers or packed bytes: both are
        # always arguments (inputs or weights).
        if indices not in self.arg_memrefs or table not in self.arg_memrefs:
            self.fail("quant.gather: the table and the indices must be inputs or weights")
        attrs = self.arg_attrs[self.arg_memrefs.index(indices)]
        known = attrs.get(ROW_INDICES_ATTR)
        tables = list(known.get_values()) if isinstance(known, DenseArrayBase) else []
        t = self.arg_memrefs.index(table)
        if t not in tables:
            attrs[ROW_INDICES_ATTR] = DenseArrayBase.from_list(i64, [*tables, t])


@dataclass(frozen=True)
class QuantirBufferizePass(ModulePass):
    """Rewrite graph functions on tensors into functions on buffers (see module docs)."""

    name = "quantir-bufferize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for f in list(op.ops):
            if isinstance(f, func.FuncOp) and not f.is_declaration and _is_graph_function(f):
                new = _FunctionBufferizer(f).run()
                op.body.block.insert_op_before(new, f)
                f.detach()
                f.erase()
