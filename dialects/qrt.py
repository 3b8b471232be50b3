"""The `qrt` dialect: how a host function hands parallel work to kernels.

After kernel outlining, a graph function is a host function: it sizes and
allocates buffers and launches kernels, in order. Each kernel is a
`func.func` marked `qrt.kernel` that runs one parallel loop nest. The first
parallel dimension of the nest is the launch range: on the CPU the runtime
splits it across threads (the kernel receives its `[lo, hi)` slice as its
first two arguments); on a GPU the mapping pass turns it into the grid.

```mlir
func.func @main(%x: memref<?x4096xf32>, %w: memref<4096x2304xi8>, %y: memref<?x4096xf32>) {
  %c4096 = arith.constant 4096 : index
  qrt.launch @main_kernel0(%x, %w, %y) range(%c4096)
      : memref<?x4096xf32>, memref<4096x2304xi8>, memref<?x4096xf32>
  func.return
}
```

GPU launches carry `threads_per_block` and `items_per_block`: the runtime
launches ceil(range / items_per_block) blocks of threads_per_block threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    Float32Type,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    StringAttr,
    SymbolRefAttr,
    VectorType,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import EffectInstance, MemoryEffect, MemoryEffectKind, Pure
from xdsl.utils.exceptions import VerifyException

ALIGN_ATTR = "qrt.align"
"""On a `vector.load` / `vector.store` (i64): the byte alignment the lowering
guarantees for the access on the GPU, where device buffers start 256-byte
aligned (wide loads and stores; the CPU keeps element alignment)."""

KERNEL_ATTR = "qrt.kernel"
"""Unit attribute on a `func.func` that is a kernel (see the module docstring)."""

TARGET_ATTR = "qrt.target"
"""String attribute on the module: the target its kernels were lowered for ("cpu", "nvptx")."""

LAUNCH_ATTR = "qrt.launch"
"""On the `scf.parallel` a `qrt.launch` becomes (convert-qrt-to-upstream): a dictionary,
empty for a CPU launch, `{threads_per_block, items_per_block}` for a GPU launch."""

DOT_U8I8_ATTR = "qrt.dot_u8i8"
"""On the last `arith.addi` of the upstream form of a `qrt.dot_u8i8`: `{code_bits = N}`."""

DOT_U8I8_SCALED_ATTR = "qrt.dot_u8i8_scaled"
"""On the `arith.addi` that ends the upstream form of a `qrt.dot_u8i8_scaled`: `{code_bits = N}`."""

# Argument attributes of a bufferized graph function (the runtime's contract).
INPUT_ATTR = "qrt.input"
"""On an argument bound to the graph's i-th input: i."""
OUTPUT_ATTR = "qrt.output"
"""On an argument the graph writes its i-th result to: i."""
RESULT_DIMS_ATTR = "qrt.result_dims"
"""On an output argument with dynamic dimensions: for each dynamic dimension, in
order, the (argument index, dimension) it equals, flattened into an i64 array."""
ROW_INDICES_ATTR = "qrt.row_indices"
"""On an argument holding quant.gather indices: the arguments whose rows (dimension 0)
its values index, as an i64 array. The runtime checks every value is in [0, rows)
before any kernel runs."""
WEIGHT_ATTR = "quant.weight"
"""On an argument bound to a named weight: the weight's name."""
WEIGHT_PART_ATTR = "quant.weight_part"
"""On a GPTQ weight argument: which checkpoint tensor it is ("qweight", ...)."""
WEIGHT_ENCODING_ATTR = "quant.encoding"
WEIGHT_SHAPE_ATTR = "quant.shape"
WEIGHT_CONFIG_ATTR = "quant.config"


class _LaunchEffects(MemoryEffect):
    """A launch may read and write every buffer it passes (conservatively)."""

    @classmethod
    def get_effects(cls, op: Operation) -> set[EffectInstance]:
        effects: set[EffectInstance] = set()
        for o in op.operands:
            effects.add(EffectInstance(MemoryEffectKind.READ, o))
            effects.add(EffectInstance(MemoryEffectKind.WRITE, o))
        return effects


@irdl_op_definition
class LaunchOp(IRDLOperation):
    """Runs kernel `@k` over `[0, range)` of its first parallel dimension.

    ```mlir
    qrt.launch @k(%a, %b) range(%n) : memref<?x64xf32>, memref<?x64xf32>
    qrt.launch @g(%a) range(%n) {threads_per_block = 256 : i64, items_per_block = 8 : i64}
        : memref<?x64xf32>
    ```
    """

    name = "qrt.launch"

    kernel = prop_def(SymbolRefAttr)
    args = var_operand_def()
    range = operand_def(IndexType)
    threads_per_block = opt_prop_def(IntegerAttr[I64])
    items_per_block = opt_prop_def(IntegerAttr[I64])

    traits = traits_def(_LaunchEffects())

    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$kernel `(` $args `)` `range` `(` $range `)` attr-dict `:` type($args)"

    def __init__(
        self,
        kernel: str | SymbolRefAttr,
        args: Sequence[SSAValue | Operation],
        range: SSAValue | Operation,
        threads_per_block: int | None = None,
        items_per_block: int | None = None,
    ):
        props: dict[str, Attribute | None] = {
            "kernel": SymbolRefAttr(kernel) if isinstance(kernel, str) else kernel,
            "threads_per_block": IntegerAttr(threads_per_block, 64) if threads_per_block else None,
            "items_per_block": IntegerAttr(items_per_block, 64) if items_per_block else None,
        }
        super().__init__(operands=[list(args), range], properties=props)

    def verify_(self) -> None:
        if (self.threads_per_block is None) != (self.items_per_block is None):
            raise VerifyException(
                "qrt.launch: threads_per_block and items_per_block go together (GPU launches)"
            )
        for name in ("threads_per_block", "items_per_block"):
            attr = getattr(self, name)
            if attr is not None and attr.value.data <= 0:
                raise VerifyException(f"qrt.launch: {name} must be positive, got {attr.value.data}")


@irdl_op_definition
class CheckOp(IRDLOperation):
    """A run-time check in host code: fails the call with `message` when `cond` is false.

    Host functions check, before any kernel runs, what types cannot say: that
    dynamic dimensions which must agree do agree.

    ```mlir
    %ok = arith.cmpi eq, %m0, %m1 : index
    qrt.check %ok, "qnn.add: dimension 0 of the operands differs"
    ```
    """

    name = "qrt.check"

    cond = operand_def(IntegerType(1))
    message = prop_def(StringAttr)

    assembly_format = "$cond `,` $message attr-dict"

    def __init__(self, cond: SSAValue | Operation, message: str):
        super().__init__(operands=[cond], properties={"message": StringAttr(message)})


@irdl_op_definition
class WarpReduceOp(IRDLOperation):
    """The sum of `value` over the 32 lanes of a GPU warp, returned to every lane.

    ```mlir
    %total = qrt.warp_reduce %partial : f32
    ```
    """

    name = "qrt.warp_reduce"

    value = operand_def(Float32Type)
    result = result_def(Float32Type)

    traits = traits_def(Pure())
    assembly_format = "$value attr-dict `:` type($value)"

    def __init__(self, value: SSAValue | Operation):
        super().__init__(operands=[value], result_types=[Float32Type()])


@irdl_op_definition
class PrefetchOp(IRDLOperation):
    """A hint to bring the memory at `%mem[indices]` into the cache (for reading).

    It never faults, so the indices may run past the end of the buffer.

    ```mlir
    qrt.prefetch %w[%row, %col] : memref<?x2304xi8>
    ```
    """

    name = "qrt.prefetch"

    mem = operand_def(MemRefType)
    indices = var_operand_def(IndexType)

    assembly_format = "$mem `[` $indices `]` attr-dict `:` type($mem)"

    def __init__(self, mem: SSAValue | Operation, indices: Sequence[SSAValue | Operation]):
        super().__init__(operands=[mem, list(indices)])

    def verify_(self) -> None:
        t = self.mem.type
        assert isinstance(t, MemRefType)
        if len(self.indices) != t.get_num_dims():
            raise VerifyException(
                f"qrt.prefetch: {t} takes {t.get_num_dims()} indices, got {len(self.indices)}"
            )


@irdl_op_definition
class DotU8I8Op(IRDLOperation):
    """Integer dot products of unsigned by signed bytes, in groups of four.

    `codes` and `values` are vectors of 4*L bytes, `acc` and the result
    vectors of L 32-bit integers:

        result[i] = acc[i] + sum_{j<4} zext(codes[4i+j]) * sext(values[4i+j])

    exactly (no saturation). `code_bits` promises that every code is below
    2^code_bits: with at most 7 bits, a pair of products fits a signed 16-bit
    integer, which lets hosts without dot-product instructions use 16-bit
    multiply-adds. The backend picks the instructions from the host's
    features (AVX-512 VNNI / AVX-VNNI `vpdpbusd`, AVX2 `vpmaddubsw` +
    `vpmaddwd`, or plain widening arithmetic).

    ```mlir
    %r = qrt.dot_u8i8 %acc, %codes, %values {code_bits = 4 : i64} : vector<32xi8> into vector<8xi32>
    ```
    """

    name = "qrt.dot_u8i8"

    ACC: ClassVar = VarConstraint("ACC", base(VectorType))
    BYTES: ClassVar = VarConstraint("BYTES", base(VectorType))

    acc = operand_def(ACC)
    codes = operand_def(BYTES)
    values = operand_def(BYTES)
    code_bits = prop_def(IntegerAttr[I64])
    result = result_def(ACC)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$acc `,` $codes `,` $values attr-dict `:` type($codes) `into` type($acc)"

    def __init__(
        self,
        acc: SSAValue | Operation,
        codes: SSAValue | Operation,
        values: SSAValue | Operation,
        code_bits: int,
    ):
        acc_v = SSAValue.get(acc)
        super().__init__(
            operands=[acc_v, codes, values],
            result_types=[acc_v.type],
            properties={"code_bits": IntegerAttr(code_bits, i64)},
        )

    def verify_(self) -> None:
        acc_t, bytes_t = self.acc.type, self.codes.type
        assert isinstance(acc_t, VectorType) and isinstance(bytes_t, VectorType)
        if acc_t.element_type != i32 or acc_t.get_num_dims() != 1:
            raise VerifyException(
                f"qrt.dot_u8i8: the accumulator must be vector<Lxi32>, got {acc_t}"
            )
        if bytes_t.element_type != i8 or bytes_t.get_num_dims() != 1:
            raise VerifyException(
                f"qrt.dot_u8i8: codes and values must be vector<Nxi8>, got {bytes_t}"
            )
        if bytes_t.get_shape()[0] != 4 * acc_t.get_shape()[0]:
            raise VerifyException(
                f"qrt.dot_u8i8: {bytes_t} holds {bytes_t.get_shape()[0]} bytes, expected four per "
                f"accumulator lane ({4 * acc_t.get_shape()[0]} for {acc_t})"
            )
        bits = self.code_bits.value.data
        if not 1 <= bits <= 8:
            raise VerifyException(f"qrt.dot_u8i8: code_bits must be in 1..8, got {bits}")


@irdl_op_definition
class DotU8I8ScaledOp(IRDLOperation):
    """Byte dot products in groups of four, each lane's sum times a 16-bit scale.

    `codes` and `values` are vectors of 4*L bytes, `scales` a vector of L
    16-bit integers, `acc` and the result vectors of L 32-bit integers:

        result[i] = acc[i] + sext(scales[i]) * sum_{j<4} zext(codes[4i+j]) * sext(values[4i+j])

    exactly, modulo 2^32 (no saturation). `code_bits` is at most 7, so that
    a pair of products fits a signed 16-bit integer: hosts apply the scale
    to pair sums with one 16-bit multiply-add (`vpmaddubsw`, then `vpdpwssd`
    with VNNI or `vpmaddwd` + `vpaddd`), which is how block formats with
    integer sub-block scales accumulate a whole block in integers.

    ```mlir
    %r = qrt.dot_u8i8_scaled %acc, %codes, %values, %scales {code_bits = 6 : i64}
        : vector<64xi8>, vector<16xi16> into vector<16xi32>
    ```
    """

    name = "qrt.dot_u8i8_scaled"

    ACC: ClassVar = VarConstraint("ACC", base(VectorType))
    BYTES: ClassVar = VarConstraint("BYTES", base(VectorType))

    acc = operand_def(ACC)
    codes = operand_def(BYTES)
    values = operand_def(BYTES)
    scales = operand_def(VectorType)
    code_bits = prop_def(IntegerAttr[I64])
    result = result_def(ACC)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$acc `,` $codes `,` $values `,` $scales attr-dict `:` type($codes) `,` type($scales) "
        "`into` type($acc)"
    )

    def __init__(
        self,
        acc: SSAValue | Operation,
        codes: SSAValue | Operation,
        values: SSAValue | Operation,
        scales: SSAValue | Operation,
        code_bits: int,
    ):
        acc_v = SSAValue.get(acc)
        super().__init__(
            operands=[acc_v, codes, values, scales],
            result_types=[acc_v.type],
            properties={"code_bits": IntegerAttr(code_bits, i64)},
        )

    def verify_(self) -> None:
        name = self.name
        acc_t, bytes_t, scales_t = self.acc.type, self.codes.type, self.scales.type
        assert isinstance(acc_t, VectorType) and isinstance(bytes_t, VectorType)
        assert isinstance(scales_t, VectorType)
        if acc_t.element_type != i32 or acc_t.get_num_dims() != 1:
            raise VerifyException(f"{name}: the accumulator must be vector<Lxi32>, got {acc_t}")
        if bytes_t.element_type != i8 or bytes_t.get_num_dims() != 1:
            raise VerifyException(f"{name}: codes and values must be vector<Nxi8>, got {bytes_t}")
        lanes = acc_t.get_shape()[0]
        if bytes_t.get_shape()[0] != 4 * lanes:
            raise VerifyException(
                f"{name}: {bytes_t} holds {bytes_t.get_shape()[0]} bytes, expected four per "
                f"accumulator lane ({4 * lanes} for {acc_t})"
            )
        if scales_t != VectorType(i16, [lanes]):
            raise VerifyException(
                f"{name}: the scales must be vector<{lanes}xi16> (one per lane), got {scales_t}"
            )
        bits = self.code_bits.value.data
        if not 1 <= bits <= 7:
            raise VerifyException(f"{name}: code_bits must be in 1..7, got {bits}")


Qrt = Dialect("qrt", [LaunchOp, CheckOp, WarpReduceOp, PrefetchOp, DotU8I8Op, DotU8I8ScaledOp], [])
