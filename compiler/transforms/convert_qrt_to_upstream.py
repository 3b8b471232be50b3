"""convert-qrt-to-upstream: the last pass of every named pipeline; its output is upstream MLIR.

Before it, the IR uses quantir's own ops where they say the most (`qrt.launch`,
`qrt.dot_u8i8`, ...); after it, only upstream dialects are left (func, arith,
scf, cf, memref, vector, math, gpu) and every attribute value is a builtin
attribute, so `mlir-opt` parses, verifies and lowers the result and
quantir's backends and runtime read exactly this form. Each qrt op has one
converter in `CONVERSIONS` (a new qrt op gets its entry there):

- `qrt.launch @k(args) range(%n)`: `scf.parallel (%i) = (0) to (%n) step (1)`
  whose body is `func.call @k(%i, %i + 1, args)`, marked `qrt.launch = {}`;
- a GPU launch (`{threads_per_block, items_per_block}`): `scf.parallel` over
  its `%t` threads, each running `func.call @k(0, %t, args)`, marked
  `qrt.launch = {threads_per_block = .., items_per_block = ..}`;
- `qrt.check %ok, "msg"`: `cf.assert %ok, "msg"`;
- `qrt.prefetch %m[%i, %j]`: `memref.prefetch %m[%i, %j], read, locality<3>, data`;
- `qrt.warp_reduce %v`: `gpu.subgroup_reduce add %v uniform : (f32) -> f32`;
- `qrt.dot_u8i8 %acc, %codes, %values`: `arith.extui` / `arith.extsi` to i32,
  `arith.muli`, then per lane group j four `vector.shuffle` (lanes 4i+j) and
  `arith.addi` into the accumulator, the last marked
  `qrt.dot_u8i8 = {code_bits = N}`;
- `qrt.dot_u8i8_scaled %acc, %codes, %values, %scales`: that form from a zero
  accumulator, `arith.extsi` of the scales to i32, `arith.muli`, and
  `arith.addi` into %acc marked `qrt.dot_u8i8_scaled = {code_bits = N}`;
- on weight arguments, `quant.encoding = #quant.encoding<q4_k>` becomes
  `quant.encoding = "q4_k"` and `quant.config = #quant.gptq<...>` a
  dictionary `{bits, group_size, desc_act, sym, format}`.

A launch's loop has upstream meaning on the CPU: iteration i runs the
kernel on `[i, i + 1)`, which the runtime splits into chunks across threads
(`runtime/host_plan.py` reads the loop back as one launch). On a GPU each
iteration is one thread, and the kernel finds its item from
`gpu.block_id`/`gpu.thread_id` (gpu-map-kernels). The dot's arithmetic is
the exact meaning of `qrt.dot_u8i8`; its mark tells quantir's LLVM
translation to select the host's dot instructions for it
(`compiler/backend/llvm/int_dot.py`), and any other compiler still computes
the same integers.

```mlir
// before
qrt.launch @f_kernel0(%w, %y) range(%n) : memref<?x18xi8>, memref<?x32xf32>
// after
scf.parallel (%i) = (%c0) to (%n) step (%c1) {
  %i1 = arith.addi %i, %c1 : index
  func.call @f_kernel0(%i, %i1, %w, %y) : (index, index, memref<?x18xi8>, memref<?x32xf32>) -> ()
  scf.reduce
} {qrt.launch = {}}
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, cf, func, scf, vector
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    IndexType,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    VectorType,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from quantir.dialects.arith_vector import ExtSIOp, ExtUIOp
from quantir.dialects.qrt import (
    DOT_U8I8_ATTR,
    DOT_U8I8_SCALED_ATTR,
    LAUNCH_ATTR,
    WEIGHT_CONFIG_ATTR,
    WEIGHT_ENCODING_ATTR,
    CheckOp,
    DotU8I8Op,
    DotU8I8ScaledOp,
    LaunchOp,
    PrefetchOp,
    WarpReduceOp,
)
from quantir.dialects.quant import EncodingAttr, GPTQConfigAttr
from quantir.dialects.upstream_ops import MemRefPrefetchOp, SubgroupReduceOp


def _launch(op: LaunchOp) -> None:
    """A launch as an scf.parallel of calls (see the module docstring)."""
    rewriter = Rewriter()
    c0 = arith.ConstantOp(IntegerAttr(0, IndexType()))
    c1 = arith.ConstantOp(IntegerAttr(1, IndexType()))
    body = Block(arg_types=[IndexType()])
    gpu = op.threads_per_block is not None
    if gpu:  # every thread runs the kernel on the whole range
        lo, hi, head = c0.result, op.range, []
    else:  # iteration i runs [i, i + 1)
        nxt = arith.AddiOp(body.args[0], c1.result)
        lo, hi, head = body.args[0], nxt.result, [nxt]
    call = func.CallOp(op.kernel, [lo, hi, *op.args], [])
    body.add_ops([*head, call, scf.ReduceOp()])
    loop = scf.ParallelOp([c0.result], [op.range], [c1.result], Region(body))
    launch: dict[str, Attribute] = {}
    if gpu:
        launch["threads_per_block"] = op.threads_per_block
        launch["items_per_block"] = op.items_per_block
    loop.attributes[LAUNCH_ATTR] = DictionaryAttr(launch)
    rewriter.insert_op([c0, c1], InsertPoint.before(op))
    rewriter.replace_op(op, loop)


def _check(op: CheckOp) -> None:
    Rewriter.replace_op(op, cf.AssertOp(op.cond, op.message))


def _prefetch(op: PrefetchOp) -> None:
    Rewriter.replace_op(op, MemRefPrefetchOp(op.mem, list(op.indices)))


def _warp_reduce(op: WarpReduceOp) -> None:
    Rewriter.replace_op(op, SubgroupReduceOp(op.value, "add", uniform=True))


def _dot_ops(
    acc: SSAValue, codes: SSAValue, values: SSAValue, code_bits: IntegerAttr
) -> tuple[list[Operation], SSAValue]:
    """Widening multiply, then the four products of each lane summed into `acc`, the
    last add marked as a dot (the upstream form of `qrt.dot_u8i8`)."""
    codes_t = codes.type
    acc_t = acc.type
    assert isinstance(codes_t, VectorType) and isinstance(acc_t, VectorType)
    nbytes, lanes = codes_t.get_shape()[0], acc_t.get_shape()[0]
    wide_t = VectorType(i32, [nbytes])
    wide_codes = ExtUIOp(codes, wide_t)
    wide_values = ExtSIOp(values, wide_t)
    products = arith.MuliOp(wide_codes.result, wide_values.result)
    ops: list[Operation] = [wide_codes, wide_values, products]
    total: SSAValue = acc
    for j in range(4):
        mask = DenseArrayBase.from_list(i64, [4 * i + j for i in range(lanes)])
        part = vector.ShuffleOp(products.result, products.result, mask, result_type=acc_t)
        add = arith.AddiOp(total, part.result)
        ops += [part, add]
        total = add.result
    ops[-1].attributes[DOT_U8I8_ATTR] = DictionaryAttr({"code_bits": code_bits})
    return ops, total


def _dot_u8i8(op: DotU8I8Op) -> None:
    ops, total = _dot_ops(op.acc, op.codes, op.values, op.code_bits)
    Rewriter.replace_op(op, ops, [total])


def _dot_u8i8_scaled(op: DotU8I8ScaledOp) -> None:
    """A dot from zero (the form above), times the sign-extended scales, added to acc."""
    acc_t = op.acc.type
    assert isinstance(acc_t, VectorType)
    zero = arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(acc_t, [0]))
    ops, dot = _dot_ops(zero.result, op.codes, op.values, op.code_bits)
    scales = ExtSIOp(op.scales, acc_t)
    scaled = arith.MuliOp(dot, scales.result)
    total = arith.AddiOp(op.acc, scaled.result)
    total.attributes[DOT_U8I8_SCALED_ATTR] = DictionaryAttr({"code_bits": op.code_bits})
    Rewriter.replace_op(op, [zero, *ops, scales, scaled, total], [total.result])


CONVERSIONS: dict[type[Operation], Callable[[Operation], None]] = {
    LaunchOp: _launch,
    CheckOp: _check,
    PrefetchOp: _prefetch,
    WarpReduceOp: _warp_reduce,
    DotU8I8Op: _dot_u8i8,
    DotU8I8ScaledOp: _dot_u8i8_scaled,
}
"""The upstream form of each qrt op: `converter(op)` replaces `op` in place."""


def upstream_weight_attr(value: Attribute) -> Attribute:
    """A weight argument's encoding or GPTQ config as builtin attributes."""
    if isinstance(value, EncodingAttr):
        return StringAttr(value.data.value)
    if isinstance(value, GPTQConfigAttr):
        return DictionaryAttr(
            {
                "bits": IntegerAttr(value.bits.data, i64),
                "group_size": IntegerAttr(value.group_size.data, i64),
                "desc_act": value.desc_act,
                "sym": value.sym,
                "format": value.checkpoint_format,
            }
        )
    return value


def _convert_arg_attrs(f: func.FuncOp) -> None:
    if f.arg_attrs is None:
        return
    new = []
    for attrs in f.arg_attrs.data:
        d = dict(attrs.data)
        for name in (WEIGHT_ENCODING_ATTR, WEIGHT_CONFIG_ATTR):
            if name in d:
                d[name] = upstream_weight_attr(d[name])
        new.append(DictionaryAttr(d))
    f.arg_attrs = ArrayAttr(new)


def convert_to_upstream(module: ModuleOp) -> None:
    """Convert every qrt op and quant attribute value of `module` in place (idempotent)."""
    for op in list(module.walk()):
        convert = CONVERSIONS.get(type(op))
        if convert is not None:
            convert(op)
        elif isinstance(op, func.FuncOp):
            _convert_arg_attrs(op)


@dataclass(frozen=True)
class ConvertQrtToUpstreamPass(ModulePass):
    """Replace qrt ops and quant attribute values by upstream MLIR (the pipelines' last pass)."""

    name = "convert-qrt-to-upstream"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        convert_to_upstream(op)


__all__ = ["CONVERSIONS", "ConvertQrtToUpstreamPass", "convert_to_upstream"]
