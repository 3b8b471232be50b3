"""Translate lowered quantir IR (func, scf, arith, memref, vector, math, gpu) to LLVM IR.

xDSL 0.75 has no arith/func/memref/cf-to-llvm conversions, and its llvm
dialect lacks uitofp/fptosi, breaks GEPs in address space 1 and drops calling
conventions. quantir therefore translates its lowered IR straight into
llvmlite's IR builder, the way `mlir-translate` does after the LLVM
conversions, keeping structured control flow until the last step.

Conventions:
- `index` is i64; a memref is a pointer to its first element plus its sizes
  (row-major, contiguous: the runtime checks every buffer before a call).
- A kernel's memref arguments become `noalias` pointers followed by one i64
  per dynamic dimension; index arguments become i64.
- CPU kernels get an exported entry `void NAME(i64 lo, i64 hi, ptr argv)`
  whose argv holds one 8-byte slot per lowered argument (after lo and hi); it
  calls the always-inlined body, so `noalias` reaches the optimizer.
- NVPTX kernels take their lowered arguments directly, in address space 1,
  and are marked `ptx_kernel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import llvmlite.ir as ir
from xdsl.dialects import arith, func, gpu, math, memref, scf, vector
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    VectorType,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue

from quantir.dialects import arith_vector
from quantir.dialects.qrt import KERNEL_ATTR, CheckOp, LaunchOp, PrefetchOp, WarpReduceOp

I64 = ir.IntType(64)
I32 = ir.IntType(32)


class TranslationError(Exception):
    """The module holds something the LLVM translation does not support."""


@dataclass(frozen=True)
class TargetInfo:
    """What differs between the CPU and the NVPTX translation."""

    name: str  # "cpu" | "nvptx"
    triple: str
    data_layout: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.name == "nvptx"

    @property
    def global_addrspace(self) -> int:
        return 1 if self.is_gpu else 0


@dataclass
class MemRefValue:
    """A lowered memref: base pointer (to element 0) and sizes (ints or i64 values)."""

    ptr: ir.Value
    elem: ir.Type
    sizes: list[int | ir.Value]
    addrspace: int = 0


def llvm_type(t: Attribute) -> ir.Type:
    if isinstance(t, IndexType):
        return I64
    if isinstance(t, IntegerType):
        return ir.IntType(t.width.data)
    if isinstance(t, Float16Type):
        return ir.HalfType()
    if isinstance(t, Float32Type):
        return ir.FloatType()
    if isinstance(t, Float64Type):
        return ir.DoubleType()
    if isinstance(t, VectorType):
        shape = t.get_shape()
        if len(shape) != 1:
            raise TranslationError(f"only 1-D vectors are supported, got {t}")
        return ir.VectorType(llvm_type(t.element_type), shape[0])
    raise TranslationError(f"no LLVM type for {t}")


def _is_float(t: ir.Type) -> bool:
    if isinstance(t, ir.VectorType):
        t = t.element
    return isinstance(t, ir.HalfType | ir.FloatType | ir.DoubleType)


def _const_value(attr: Attribute, t: ir.Type) -> ir.Constant:
    if isinstance(attr, IntegerAttr):
        return ir.Constant(t, attr.value.data)
    if isinstance(attr, FloatAttr):
        return ir.Constant(t, attr.value.data)
    if isinstance(attr, DenseIntOrFPElementsAttr):
        values = list(attr.get_values())
        if not isinstance(t, ir.VectorType):
            raise TranslationError("dense constants must be vectors")
        if len(values) == 1:
            values = values * t.count
        return ir.Constant(t, values)
    raise TranslationError(f"unsupported constant {attr}")


_ICMP = {
    "eq": ("==", False),
    "ne": ("!=", False),
    "slt": ("<", True),
    "sle": ("<=", True),
    "sgt": (">", True),
    "sge": (">=", True),
    "ult": ("<", False),
    "ule": ("<=", False),
    "ugt": (">", False),
    "uge": (">=", False),
}
_CMPI_NAMES = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]
_FCMP = {
    1: ("==", True),  # oeq
    2: (">", True),  # ogt
    3: (">=", True),  # oge
    4: ("<", True),  # olt
    5: ("<=", True),  # ole
    6: ("!=", True),  # one
    7: ("ord", True),
    8: ("==", False),  # ueq
    9: (">", False),
    10: (">=", False),
    11: ("<", False),
    12: ("<=", False),
    13: ("!=", False),  # une
    14: ("uno", False),
}


def _fast_flags(op: Operation) -> tuple[str, ...]:
    fm = op.properties.get("fastmath") or op.attributes.get("fastmath")
    if fm is None:
        return ()
    flags = tuple(sorted(f.value if hasattr(f, "value") else str(f) for f in fm.data))
    return (
        ("fast",)
        if set(flags) >= {"reassoc", "nnan", "ninf", "nsz", "arcp", "contract", "afn"}
        else flags
    )


@dataclass
class _FunctionState:
    builder: ir.IRBuilder
    values: dict[SSAValue, object] = field(default_factory=dict)
    entry: ir.Block | None = None


class ModuleTranslator:
    """Translates the kernels (or, without kernels, every function) of a module."""

    def __init__(self, target: TargetInfo):
        self.target = target
        self.module = ir.Module(name="quantir")
        self.module.triple = target.triple
        if target.data_layout:
            self.module.data_layout = target.data_layout
        self.nontemporal = self.module.add_metadata([ir.Constant(I32, 1)])
        self.kernels: dict[str, KernelSignature] = {}

    # -- entry -----------------------------------------------------------

    def translate(self, mod: ModuleOp) -> ir.Module:
        funcs = [f for f in mod.ops if isinstance(f, func.FuncOp) and not f.is_declaration]
        kernels = [f for f in funcs if KERNEL_ATTR in f.attributes]
        # Host functions (launches, allocations, copies, checks) run in the
        # runtime's host plan, not in compiled code.
        host_ops = (LaunchOp, CheckOp, memref.AllocOp, memref.DeallocOp, memref.CopyOp)
        hosts = [f for f in funcs if any(isinstance(o, host_ops) for o in f.walk())]
        if kernels:
            for f in kernels:
                self.translate_kernel(f)
        else:
            for f in funcs:
                if f not in hosts:
                    self.translate_plain(f)
        return self.module

    # -- signatures ------------------------------------------------------

    def lowered_params(self, f: func.FuncOp, skip: int) -> list[tuple[str, ir.Type, Attribute]]:
        """(kind, type, mlir type) per lowered parameter of f's arguments from `skip` on."""
        params: list[tuple[str, ir.Type, Attribute]] = []
        for t in f.function_type.inputs.data[skip:]:
            if isinstance(t, MemRefType):
                params.append(("ptr", ir.PointerType(addrspace=self.target.global_addrspace), t))
                for d in t.get_shape():
                    if d < 0:
                        params.append(("dim", I64, t))
            elif isinstance(t, IndexType | IntegerType):
                params.append(("int", llvm_type(t), t))
            elif isinstance(t, Float32Type | Float16Type | Float64Type):
                params.append(("float", llvm_type(t), t))
            else:
                raise TranslationError(f"@{f.sym_name.data}: unsupported argument type {t}")
        return params

    def bind_args(
        self, f: func.FuncOp, state: _FunctionState, llvm_args: Sequence[ir.Value], skip: int
    ) -> None:
        it = iter(llvm_args)
        for arg in f.body.block.args[skip:]:
            t = arg.type
            if isinstance(t, MemRefType):
                ptr = next(it)
                sizes: list[int | ir.Value] = [d if d >= 0 else next(it) for d in t.get_shape()]
                state.values[arg] = MemRefValue(
                    ptr, llvm_type(t.element_type), sizes, self.target.global_addrspace
                )
            else:
                state.values[arg] = next(it)

    def translate_plain(self, f: func.FuncOp) -> None:
        """A function with memref/scalar arguments and no results (direct ABI)."""
        if f.function_type.outputs.data:
            raise TranslationError(f"@{f.sym_name.data}: functions must return nothing")
        params = self.lowered_params(f, 0)
        fn = ir.Function(
            self.module, ir.FunctionType(ir.VoidType(), [p[1] for p in params]), f.sym_name.data
        )
        self._mark_noalias(fn, params, 0)
        state = self._start(fn)
        self.bind_args(f, state, fn.args, 0)
        self.translate_block_ops(f.body.block, state)

    def translate_kernel(self, f: func.FuncOp) -> None:
        name = f.sym_name.data
        inputs = f.function_type.inputs.data
        if len(inputs) < 2 or not all(isinstance(t, IndexType) for t in inputs[:2]):
            raise TranslationError(f"kernel @{name} must start with (lo: index, hi: index)")
        params = self.lowered_params(f, 2)
        self.kernels[name] = KernelSignature.of(name, f.function_type.inputs.data[2:])
        if self.target.is_gpu:
            fn = ir.Function(
                self.module,
                ir.FunctionType(ir.VoidType(), [I64, I64, *[p[1] for p in params]]),
                name,
            )
            fn.calling_convention = "ptx_kernel"
            self._mark_noalias(fn, params, 2)
            state = self._start(fn)
            state.values[f.body.block.args[0]] = fn.args[0]
            state.values[f.body.block.args[1]] = fn.args[1]
            self.bind_args(f, state, fn.args[2:], 2)
            self.translate_block_ops(f.body.block, state)
            return
        # CPU: an always-inlined body with noalias parameters ...
        body = ir.Function(
            self.module,
            ir.FunctionType(ir.VoidType(), [I64, I64, *[p[1] for p in params]]),
            f"{name}.body",
        )
        body.linkage = "internal"
        body.attributes.add("alwaysinline")
        self._mark_noalias(body, params, 2)
        state = self._start(body)
        state.values[f.body.block.args[0]] = body.args[0]
        state.values[f.body.block.args[1]] = body.args[1]
        self.bind_args(f, state, body.args[2:], 2)
        self.translate_block_ops(f.body.block, state)
        # ... behind an entry point with one signature for every kernel.
        ptr = ir.PointerType()
        entry = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [I64, I64, ptr]), name)
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        args = []
        for i, (_, t, _) in enumerate(params):
            slot = b.gep(entry.args[2], [ir.Constant(I64, i)], inbounds=True, source_etype=I64)
            args.append(b.load(slot, typ=t, align=8))
        b.call(body, [entry.args[0], entry.args[1], *args])
        b.ret_void()

    def _mark_noalias(self, fn: ir.Function, params, offset: int) -> None:
        for i, (kind, _, _) in enumerate(params):
            if kind == "ptr":
                fn.args[offset + i].add_attribute("noalias")

    def _start(self, fn: ir.Function) -> _FunctionState:
        entry = fn.append_basic_block("entry")
        state = _FunctionState(ir.IRBuilder(entry), entry=entry)
        return state

    # -- blocks and ops -------------------------------------------------------

    def translate_block_ops(self, block: Block, state: _FunctionState) -> None:
        for op in block.ops:
            self.translate_op(op, state)

    def get(self, state: _FunctionState, v: SSAValue):
        try:
            return state.values[v]
        except KeyError:
            raise TranslationError(f"value {v.name_hint or v} used before its definition") from None

    def translate_op(self, op: Operation, state: _FunctionState) -> None:
        b = state.builder
        g = lambda v: self.get(state, v)  # noqa: E731
        res = op.results[0] if op.results else None

        def put(value) -> None:
            assert res is not None
            state.values[res] = value

        match op:
            case func.ReturnOp():
                if op.operands:
                    raise TranslationError("functions must return nothing")
                b.ret_void()
            case arith.ConstantOp():
                put(_const_value(op.value, llvm_type(op.result.type)))
            case scf.ForOp():
                self.translate_for(op, state)
            case scf.ParallelOp():
                self.translate_parallel(op, state)
            case scf.IfOp():
                self.translate_if(op, state)
            case (
                memref.LoadOp()
                | memref.StoreOp()
                | vector.LoadOp()
                | vector.StoreOp()
                | memref.DimOp()
                | memref.CollapseShapeOp()
                | memref.ExpandShapeOp()
                | memref.AllocaOp()
            ):
                self.translate_memory(op, state)
            case vector.BroadcastOp():
                t = llvm_type(op.vector.type)
                src = g(op.source)
                undef = ir.Constant(t, ir.Undefined)
                one = b.insert_element(undef, src, ir.Constant(I32, 0))
                put(
                    b.shuffle_vector(
                        one, undef, ir.Constant(ir.VectorType(I32, t.count), [0] * t.count)
                    )
                )
            case vector.ExtractOp():
                if op.dynamic_position:
                    raise TranslationError("vector.extract with dynamic positions is unsupported")
                (pos,) = op.static_position.get_values()
                put(b.extract_element(g(op.vector), ir.Constant(I32, pos)))
            case vector.InsertOp():
                if op.dynamic_position:
                    raise TranslationError("vector.insert with dynamic positions is unsupported")
                (pos,) = op.static_position.get_values()
                put(b.insert_element(g(op.dest), g(op.source), ir.Constant(I32, pos)))
            case vector.ShuffleOp():
                mask = list(op.mask.get_values())
                put(
                    b.shuffle_vector(
                        g(op.v1), g(op.v2), ir.Constant(ir.VectorType(I32, len(mask)), mask)
                    )
                )
            case vector.BitcastOp():
                put(b.bitcast(g(op.source), llvm_type(op.result.type)))
            case vector.FMAOp():
                t = llvm_type(op.res.type)
                fn = self.intrinsic("llvm.fma", t, [t, t, t])
                put(b.call(fn, [g(op.lhs), g(op.rhs), g(op.acc)]))
            case math.FmaOp():
                t = llvm_type(op.result.type)
                fn = self.intrinsic("llvm.fma", t, [t, t, t])
                put(b.call(fn, [g(op.a), g(op.b), g(op.c)]))
            case vector.ReductionOp():
                put(self.translate_reduction(op, state))
            case gpu.ThreadIdOp() | gpu.BlockIdOp() | gpu.BlockDimOp() | gpu.GridDimOp():
                put(self.translate_gpu_id(op, state))
            case WarpReduceOp():
                put(self.translate_warp_reduce(op, state))
            case PrefetchOp():
                m = g(op.mem)
                # Not `inbounds`: the address may lie past the buffer's end.
                addr = self.address(b, m, [g(i) for i in op.indices], inbounds=False)
                ptr_t = ir.PointerType(addrspace=m.addrspace)
                fn = self.intrinsic_void(f"llvm.prefetch.p{m.addrspace}", [ptr_t, I32, I32, I32])
                # read, high temporal locality, data cache
                b.call(fn, [addr, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])
            case gpu.BarrierOp():
                b.call(self.intrinsic_void("llvm.nvvm.barrier0", []), [])
            case _:
                self.translate_arith(op, state)

    # -- arith ------------------------------------------------------------

    def translate_arith(self, op: Operation, state: _FunctionState) -> None:
        b = state.builder
        g = lambda v: self.get(state, v)  # noqa: E731
        res = op.results[0] if op.results else None
        rt = llvm_type(res.type) if res is not None else None
        binops = {
            arith.AddiOp: b.add,
            arith.SubiOp: b.sub,
            arith.MuliOp: b.mul,
            arith.DivUIOp: b.udiv,
            arith.DivSIOp: b.sdiv,
            arith.RemUIOp: b.urem,
            arith.RemSIOp: b.srem,
            arith.AndIOp: b.and_,
            arith.OrIOp: b.or_,
            arith.XOrIOp: b.xor,
            arith.ShLIOp: b.shl,
            arith.ShRUIOp: b.lshr,
            arith.ShRSIOp: b.ashr,
        }
        fbinops = {
            arith.AddfOp: b.fadd,
            arith.SubfOp: b.fsub,
            arith.MulfOp: b.fmul,
            arith.DivfOp: b.fdiv,
        }
        casts = {
            arith_vector.ExtUIOp: b.zext,
            arith_vector.ExtSIOp: b.sext,
            arith_vector.TruncIOp: b.trunc,
            arith_vector.UIToFPOp: b.uitofp,
            arith_vector.SIToFPOp: b.sitofp,
            arith_vector.FPToSIOp: b.fptosi,
            arith_vector.FPToUIOp: b.fptoui,
            arith.ExtUIOp: b.zext,
            arith.ExtSIOp: b.sext,
            arith.TruncIOp: b.trunc,
            arith.UIToFPOp: b.uitofp,
            arith.SIToFPOp: b.sitofp,
            arith.FPToSIOp: b.fptosi,
            arith.FPToUIOp: b.fptoui,
            arith.ExtFOp: b.fpext,
            arith.TruncFOp: b.fptrunc,
        }
        if type(op) in binops:
            state.values[res] = binops[type(op)](g(op.operands[0]), g(op.operands[1]))
        elif type(op) in fbinops:
            fn = fbinops[type(op)]
            state.values[res] = fn(g(op.operands[0]), g(op.operands[1]), flags=_fast_flags(op))
        elif type(op) in casts:
            state.values[res] = casts[type(op)](g(op.operands[0]), rt)
        elif isinstance(op, arith.BitcastOp):
            state.values[res] = b.bitcast(g(op.input), rt)
        elif isinstance(op, arith.IndexCastOp):
            src = g(op.input)
            sw, dw = src.type.width, rt.width
            state.values[res] = (
                src if sw == dw else (b.sext(src, rt) if dw > sw else b.trunc(src, rt))
            )
        elif isinstance(op, arith.NegfOp):
            state.values[res] = b.fneg(g(op.operand), flags=_fast_flags(op))
        elif isinstance(op, arith.CmpiOp):
            pred, signed = _ICMP[_CMPI_NAMES[op.predicate.value.data]]
            cmp = b.icmp_signed if signed else b.icmp_unsigned
            state.values[res] = cmp(pred, g(op.lhs), g(op.rhs))
        elif isinstance(op, arith.CmpfOp):
            pred, ordered = _FCMP[op.predicate.value.data]
            cmp = b.fcmp_ordered if ordered else b.fcmp_unordered
            state.values[res] = cmp(pred, g(op.lhs), g(op.rhs))
        elif isinstance(op, arith.SelectOp):
            state.values[res] = b.select(g(op.cond), g(op.lhs), g(op.rhs))
        elif isinstance(op, arith.MinUIOp | arith.MinSIOp | arith.MaxUIOp | arith.MaxSIOp):
            a, c = g(op.lhs), g(op.rhs)
            signed = isinstance(op, arith.MinSIOp | arith.MaxSIOp)
            pred = "<" if isinstance(op, arith.MinUIOp | arith.MinSIOp) else ">"
            cond = (b.icmp_signed if signed else b.icmp_unsigned)(pred, a, c)
            state.values[res] = b.select(cond, a, c)
        elif isinstance(
            op, arith.MaximumfOp | arith.MinimumfOp | arith.MaxnumfOp | arith.MinnumfOp
        ):
            name = {
                arith.MaximumfOp: "llvm.maximum",
                arith.MinimumfOp: "llvm.minimum",
                arith.MaxnumfOp: "llvm.maxnum",
                arith.MinnumfOp: "llvm.minnum",
            }[type(op)]
            fn = self.intrinsic(name, rt, [rt, rt])
            state.values[res] = b.call(fn, [g(op.lhs), g(op.rhs)])
        elif isinstance(op, math.AbsFOp):
            state.values[res] = b.call(self.intrinsic("llvm.fabs", rt, [rt]), [g(op.operand)])
        elif isinstance(op, math.SqrtOp):
            state.values[res] = b.call(self.intrinsic("llvm.sqrt", rt, [rt]), [g(op.operand)])
        else:
            raise TranslationError(f"'{op.name}' has no LLVM translation")

    # -- memory ------------------------------------------------------------

    def address(
        self,
        b: ir.IRBuilder,
        m: MemRefValue,
        indices: Sequence[ir.Value],
        inbounds: bool = True,
    ) -> ir.Value:
        if len(indices) != len(m.sizes):
            raise TranslationError("memref access with the wrong number of indices")
        linear: ir.Value | None = None
        for idx, size in zip(indices, m.sizes):
            if linear is None:
                linear = idx
            else:
                size_v = ir.Constant(I64, size) if isinstance(size, int) else size
                linear = b.add(b.mul(linear, size_v), idx)
        if linear is None:
            linear = ir.Constant(I64, 0)
        return b.gep(m.ptr, [linear], inbounds=inbounds, source_etype=m.elem)

    def translate_memory(self, op: Operation, state: _FunctionState) -> None:
        b = state.builder
        g = lambda v: self.get(state, v)  # noqa: E731
        match op:
            case memref.LoadOp():
                m = g(op.memref)
                state.values[op.res] = b.load(
                    self.address(b, m, [g(i) for i in op.indices]), typ=m.elem, align=_align(m.elem)
                )
            case memref.StoreOp():
                m = g(op.memref)
                b.store(
                    g(op.value),
                    self.address(b, m, [g(i) for i in op.indices]),
                    align=_align(m.elem),
                )
            case vector.LoadOp():
                m = g(op.base)
                t = llvm_type(op.result.type)
                state.values[op.result] = b.load(
                    self.address(b, m, [g(i) for i in op.indices]), typ=t, align=_align(m.elem)
                )
            case vector.StoreOp():
                m = g(op.base)
                addr = self.address(b, m, [g(i) for i in op.indices])
                value = g(op.vector)
                nt = op.nontemporal
                if nt is not None and nt.value.data and not self.target.is_gpu:
                    self.store_nontemporal(b, value, addr, _align(m.elem))
                else:
                    b.store(value, addr, align=_align(m.elem))
            case memref.DimOp():
                m = g(op.source)
                idx_op = op.index.owner
                if not isinstance(idx_op, arith.ConstantOp):
                    raise TranslationError("memref.dim needs a constant dimension")
                size = m.sizes[idx_op.value.value.data]
                state.values[op.result] = ir.Constant(I64, size) if isinstance(size, int) else size
            case memref.CollapseShapeOp():
                m = g(op.src)
                sizes: list[int | ir.Value] = []
                for group in op.reassociation.data:
                    total: int | ir.Value = 1
                    for i in (a.value.data for a in group.data):
                        total = _mul_size(b, total, m.sizes[i])
                    sizes.append(total)
                state.values[op.result] = MemRefValue(m.ptr, m.elem, sizes, m.addrspace)
            case memref.ExpandShapeOp():
                m = g(op.src)
                dyn = iter(g(v) for v in op.output_shape)
                sizes = [d if d >= 0 else next(dyn) for d in op.static_output_shape.get_values()]
                state.values[op.result] = MemRefValue(m.ptr, m.elem, sizes, m.addrspace)
            case memref.AllocaOp():
                t = op.memref.type
                assert isinstance(t, MemRefType)
                if any(d < 0 for d in t.get_shape()):
                    raise TranslationError("memref.alloca needs static sizes")
                count = 1
                for d in t.get_shape():
                    count *= d
                elem = llvm_type(t.element_type)
                # Allocas go in the entry block so loops do not grow the stack.
                with b.goto_entry_block():
                    b.position_at_start(state.entry)
                    slot = b.alloca(ir.ArrayType(elem, count))
                    slot.align = 64
                    # llvmlite types allocas as typed pointers, whose loads and
                    # stores it checks against the pointee; LLVM 22 pointers
                    # are opaque, so give this one the opaque type of every
                    # other buffer pointer (the printed IR is the same).
                    slot.type = ir.PointerType()
                state.values[op.memref] = MemRefValue(slot, elem, list(t.get_shape()))

    def store_nontemporal(self, b: ir.IRBuilder, value: ir.Value, addr: ir.Value, elem_align: int):
        """A streaming store: whole-vector where the address allows it.

        x86 streaming stores of whole vectors need the vector's alignment
        (capped at 64 bytes). Buffers quantir allocates are 64-byte aligned,
        so that branch is the one normally taken; for other buffers (numpy's
        are 16-byte aligned) the store stays non-temporal at element
        alignment, which LLVM splits into 8-byte MOVNTI stores: still no
        read-for-ownership of the destination, unlike a plain store.
        """
        t = value.type
        size = t.count * _align(t.element) if isinstance(t, ir.VectorType) else _align(t)
        align = min(64, size)
        if align & (align - 1) or align <= elem_align:
            st = b.store(value, addr, align=elem_align)
            st.set_metadata("nontemporal", self.nontemporal)
            return
        misaligned = b.and_(b.ptrtoint(addr, I64), ir.Constant(I64, align - 1))
        is_aligned = b.icmp_unsigned("==", misaligned, ir.Constant(I64, 0))
        with b.if_else(is_aligned, likely=True) as (then, otherwise):
            with then:
                st = b.store(value, addr, align=align)
                st.set_metadata("nontemporal", self.nontemporal)
            with otherwise:
                st = b.store(value, addr, align=elem_align)
                st.set_metadata("nontemporal", self.nontemporal)

    # -- control flow -----------------------------------------------------------

    def translate_for(self, op: scf.ForOp, state: _FunctionState) -> None:
        b = state.builder
        lb, ub, step = (self.get(state, v) for v in (op.lb, op.ub, op.step))
        inits = [self.get(state, v) for v in op.iter_args]
        pre = b.block
        fn = pre.function
        header = fn.append_basic_block("for.header")
        body = fn.append_basic_block("for.body")
        exit_ = fn.append_basic_block("for.exit")
        b.branch(header)
        b.position_at_end(header)
        iv = b.phi(lb.type, name="iv")
        iv.add_incoming(lb, pre)
        carried = []
        for v in inits:
            p = b.phi(v.type)
            p.add_incoming(v, pre)
            carried.append(p)
        cond = b.icmp_signed("<", iv, ub)
        b.cbranch(cond, body, exit_)
        b.position_at_end(body)
        block = op.body.block
        state.values[block.args[0]] = iv
        for arg, p in zip(block.args[1:], carried):
            state.values[arg] = p
        yielded = self._translate_region_body(block, state, scf.YieldOp)
        latch = b.block
        nxt = b.add(iv, step, flags=("nsw",))
        iv.add_incoming(nxt, latch)
        for p, y in zip(carried, yielded):
            p.add_incoming(y, latch)
        b.branch(header)
        b.position_at_end(exit_)
        for r, p in zip(op.results, carried):
            state.values[r] = p

    def translate_parallel(self, op: scf.ParallelOp, state: _FunctionState) -> None:
        if op.initVals:
            raise TranslationError("scf.parallel with reductions has no LLVM translation")
        b = state.builder
        block = op.body.block
        dims = list(zip(op.lowerBound, op.upperBound, op.step, block.args))

        def emit(level: int) -> None:
            if level == len(dims):
                for inner in block.ops:
                    if isinstance(inner, scf.ReduceOp):
                        if inner.operands:
                            raise TranslationError("scf.reduce with operands is unsupported")
                        continue
                    self.translate_op(inner, state)
                return
            lb_v, ub_v, step_v, arg = dims[level]
            lb, ub, step = (self.get(state, v) for v in (lb_v, ub_v, step_v))
            pre = b.block
            fn = pre.function
            header = fn.append_basic_block("par.header")
            body = fn.append_basic_block("par.body")
            exit_ = fn.append_basic_block("par.exit")
            b.branch(header)
            b.position_at_end(header)
            iv = b.phi(I64, name="piv")
            iv.add_incoming(lb, pre)
            b.cbranch(b.icmp_signed("<", iv, ub), body, exit_)
            b.position_at_end(body)
            state.values[arg] = iv
            emit(level + 1)
            latch = b.block
            iv.add_incoming(b.add(iv, step, flags=("nsw",)), latch)
            b.branch(header)
            b.position_at_end(exit_)

        emit(0)

    def translate_if(self, op: scf.IfOp, state: _FunctionState) -> None:
        b = state.builder
        fn = b.block.function
        then_bb = fn.append_basic_block("if.then")
        else_bb = fn.append_basic_block("if.else")
        merge = fn.append_basic_block("if.end")
        b.cbranch(self.get(state, op.cond), then_bb, else_bb)
        incoming: list[tuple[list, ir.Block]] = []
        for region, bb in ((op.true_region, then_bb), (op.false_region, else_bb)):
            b.position_at_end(bb)
            vals: list = []
            if region.blocks:
                vals = self._translate_region_body(region.block, state, scf.YieldOp)
            incoming.append((vals, b.block))
            b.branch(merge)
        b.position_at_end(merge)
        for i, r in enumerate(op.results):
            p = b.phi(llvm_type(r.type))
            for vals, bb in incoming:
                p.add_incoming(vals[i], bb)
            state.values[r] = p

    def _translate_region_body(self, block: Block, state: _FunctionState, term: type) -> list:
        out: list = []
        for inner in block.ops:
            if isinstance(inner, term):
                out = [self.get(state, v) for v in inner.operands]
            else:
                self.translate_op(inner, state)
        return out

    # -- vectors and GPUs -------------------------------------------------------

    def translate_reduction(self, op: vector.ReductionOp, state: _FunctionState) -> ir.Value:
        b = state.builder
        v = self.get(state, op.vector)
        t = v.type
        kind = op.kind.data
        if kind != "add":
            raise TranslationError(f"vector.reduction <{kind}> is unsupported")
        if _is_float(t):
            fn = self.intrinsic(
                "llvm.vector.reduce.fadd", t.element, [t.element, t], suffix_types=[t]
            )
            start = ir.Constant(t.element, -0.0)
            call = b.call(fn, [start, v], fastmath=_fast_flags(op) or ("reassoc",))
            result = call
        else:
            fn = self.intrinsic("llvm.vector.reduce.add", t.element, [t], suffix_types=[t])
            result = b.call(fn, [v])
        if op.acc is not None:
            acc = self.get(state, op.acc)
            result = b.fadd(result, acc) if _is_float(t) else b.add(result, acc)
        return result

    def translate_gpu_id(self, op: Operation, state: _FunctionState) -> ir.Value:
        if not self.target.is_gpu:
            raise TranslationError(f"'{op.name}' needs the NVPTX target")
        reg = {
            gpu.ThreadIdOp: "tid",
            gpu.BlockIdOp: "ctaid",
            gpu.BlockDimOp: "ntid",
            gpu.GridDimOp: "nctaid",
        }[type(op)]
        dim = (
            op.dimension.data.value
            if hasattr(op.dimension.data, "value")
            else str(op.dimension.data)
        )
        fn = self.intrinsic_void(f"llvm.nvvm.read.ptx.sreg.{reg}.{dim}", [], ret=I32)
        return state.builder.zext(state.builder.call(fn, []), I64)

    def translate_warp_reduce(self, op: WarpReduceOp, state: _FunctionState) -> ir.Value:
        """Butterfly sum over the 32 lanes (shfl.sync.bfly, full mask)."""
        if not self.target.is_gpu:
            raise TranslationError("qrt.warp_reduce needs the NVPTX target")
        b = state.builder
        f32 = ir.FloatType()
        shfl = self.intrinsic_void("llvm.nvvm.shfl.sync.bfly.f32", [I32, f32, I32, I32], ret=f32)
        value = self.get(state, op.value)
        for offset in (16, 8, 4, 2, 1):
            other = b.call(
                shfl, [ir.Constant(I32, -1), value, ir.Constant(I32, offset), ir.Constant(I32, 31)]
            )
            value = b.fadd(value, other)
        return value

    # -- intrinsics -------------------------------------------------------------

    def intrinsic(
        self, name: str, ret: ir.Type, args: list[ir.Type], suffix_types=None
    ) -> ir.Function:
        suffix_src = suffix_types if suffix_types is not None else [ret]
        full = name + "".join("." + _mangle(t) for t in suffix_src)
        return self.intrinsic_void(full, args, ret=ret)

    def intrinsic_void(
        self, full: str, args: list[ir.Type], ret: ir.Type | None = None
    ) -> ir.Function:
        existing = self.module.globals.get(full)
        if existing is not None:
            return existing
        return ir.Function(self.module, ir.FunctionType(ret or ir.VoidType(), args), full)


@dataclass(frozen=True)
class KernelSignature:
    """How a kernel's arguments (after lo, hi) are passed.

    One entry per MLIR argument: ("memref", dynamic dimension indices) passes
    a pointer then one i64 per dynamic dimension; ("int", ()) an i64 (or the
    integer's width); ("float", ()) a float.
    """

    name: str
    params: tuple[tuple[str, tuple[int, ...]], ...]

    @staticmethod
    def of(name: str, types: Sequence[Attribute]) -> KernelSignature:
        params = []
        for t in types:
            if isinstance(t, MemRefType):
                dyn = tuple(i for i, d in enumerate(t.get_shape()) if d < 0)
                params.append(("memref", dyn))
            elif isinstance(t, IndexType | IntegerType):
                params.append(("int", ()))
            else:
                params.append(("float", ()))
        return KernelSignature(name, tuple(params))

    @property
    def slots(self) -> int:
        """Number of 8-byte argv slots (CPU) or parameters (GPU) after lo, hi."""
        return sum(1 + len(dims) if kind == "memref" else 1 for kind, dims in self.params)


def _mangle(t: ir.Type) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_mangle(t.element)}"
    if isinstance(t, ir.FloatType):
        return "f32"
    if isinstance(t, ir.HalfType):
        return "f16"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    raise TranslationError(f"cannot mangle {t}")


def _align(t: ir.Type) -> int:
    """Natural alignment of a scalar element (vectors are accessed at element alignment)."""
    if isinstance(t, ir.IntType):
        return max(1, t.width // 8)
    if isinstance(t, ir.HalfType):
        return 2
    if isinstance(t, ir.FloatType):
        return 4
    if isinstance(t, ir.DoubleType):
        return 8
    return 1


def _mul_size(b: ir.IRBuilder, a: int | ir.Value, c: int | ir.Value) -> int | ir.Value:
    if isinstance(a, int) and isinstance(c, int):
        return a * c
    av = ir.Constant(I64, a) if isinstance(a, int) else a
    cv = ir.Constant(I64, c) if isinstance(c, int) else c
    return b.mul(av, cv)


def translate_module(
    mod: ModuleOp, target: TargetInfo
) -> tuple[ir.Module, dict[str, KernelSignature]]:
    translator = ModuleTranslator(target)
    translator.translate(mod)
    return translator.module, translator.kernels
