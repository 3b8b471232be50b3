"""The host side of a compiled graph function, as a flat plan of steps.

After the pipeline, a graph function is straight-line host code in upstream
MLIR: it reads buffer sizes (`memref.dim`, `arith`), checks them
(`cf.assert`), allocates intermediate buffers (`memref.alloc`) and launches
kernels in order. A launch is an `scf.parallel` marked `qrt.launch` whose
body calls the kernel (convert-qrt-to-upstream): its upper bound is the
launch range, the call's arguments after `(lo, hi)` are the kernel's, and
the mark holds a GPU launch's `threads_per_block` and `items_per_block`.
`HostPlan.build` turns that function into steps once, so a call runs a short
Python loop instead of walking IR. Checks run first, before anything is
allocated or written.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

from xdsl.dialects import arith, cf, func, memref, scf
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    DenseArrayBase,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
    StringAttr,
)
from xdsl.ir import Attribute, SSAValue

from quantir.dialects.errors import QuantirError
from quantir.dialects.qrt import (
    INPUT_ATTR,
    LAUNCH_ATTR,
    OUTPUT_ATTR,
    RESULT_DIMS_ATTR,
    ROW_INDICES_ATTR,
    WEIGHT_ATTR,
    WEIGHT_PART_ATTR,
)


class PlanError(QuantirError):
    """The host function uses something the runtime cannot execute."""


def numpy_dtypes(elem: Attribute) -> tuple[str, ...]:
    """numpy dtypes accepted for a memref element type (first one is used to allocate)."""
    if isinstance(elem, Float32Type):
        return ("float32",)
    if isinstance(elem, Float16Type):
        return ("float16",)
    if isinstance(elem, IntegerType):
        width = elem.width.data
        if width == 8:
            return ("uint8", "int8")
        if width == 32:
            return ("int32", "uint32")
        if width == 64:
            return ("int64", "uint64")
    raise PlanError(f"no numpy dtype for {elem}")


@dataclass(frozen=True)
class BufferSpec:
    """What a function argument must be: element dtypes and shape (-1 = dynamic)."""

    dtypes: tuple[str, ...]
    shape: tuple[int, ...]

    @staticmethod
    def of(t: MemRefType) -> BufferSpec:
        shape = tuple(-1 if d == DYNAMIC_INDEX else d for d in t.get_shape())
        return BufferSpec(numpy_dtypes(t.element_type), shape)


@dataclass(frozen=True)
class ArgSpec:
    index: int
    kind: str  # "input" | "weight" | "output"
    spec: BufferSpec
    position: int = 0  # input or output number
    weight_name: str = ""
    weight_part: str = ""
    result_dims: tuple[tuple[int, int], ...] = ()  # outputs: (arg, dim) per dynamic dim
    name: str = ""  # the argument's name in the IR (`%x` -> "x"), when it has one
    row_indices_of: tuple[int, ...] = ()  # gather indices: the args whose rows they index

    @property
    def label(self) -> str:
        """How errors name this argument: `x` when named, else its position."""
        return self.name or str(self.position)


@dataclass
class Step:
    kind: str
    target: int = -1  # register written
    args: tuple = ()


@dataclass
class HostPlan:
    name: str
    args: list[ArgSpec]
    steps: list[Step] = field(default_factory=list)
    registers: int = 0

    # Read on every call of a Program: computed once, after the plan is built
    # (`args` does not change after that).
    @cached_property
    def inputs(self) -> list[ArgSpec]:
        return sorted((a for a in self.args if a.kind == "input"), key=lambda a: a.position)

    @cached_property
    def outputs(self) -> list[ArgSpec]:
        return sorted((a for a in self.args if a.kind == "output"), key=lambda a: a.position)

    @cached_property
    def weights(self) -> list[ArgSpec]:
        return [a for a in self.args if a.kind == "weight"]

    @cached_property
    def row_indices(self) -> list[ArgSpec]:
        """The arguments holding gather indices, whose values a call checks."""
        return [a for a in self.args if a.row_indices_of]

    @cached_property
    def weights_by_name(self) -> dict[str, list[ArgSpec]]:
        """The weight arguments grouped by weight (a GPTQ weight has four parts)."""
        groups: dict[str, list[ArgSpec]] = {}
        for spec in self.weights:
            groups.setdefault(spec.weight_name, []).append(spec)
        return groups

    @staticmethod
    def build(f: func.FuncOp) -> HostPlan:
        return _PlanBuilder(f).build()


_INT_BINOPS: dict[type, Callable[[int, int], int]] = {
    arith.AddiOp: operator.add,
    arith.SubiOp: operator.sub,
    arith.MuliOp: operator.mul,
    arith.DivUIOp: operator.floordiv,
    arith.RemUIOp: operator.mod,
    arith.MinUIOp: min,
    arith.MaxUIOp: max,
}

_CMP = {
    0: operator.eq,
    1: operator.ne,
    2: operator.lt,
    3: operator.le,
    4: operator.gt,
    5: operator.ge,
    6: operator.lt,
    7: operator.le,
    8: operator.gt,
    9: operator.ge,
}


class _PlanBuilder:
    def __init__(self, f: func.FuncOp):
        self.f = f
        self.reg: dict[SSAValue, int] = {}
        self.plan = HostPlan(f.sym_name.data, [])

    def new(self, v: SSAValue) -> int:
        r = self.plan.registers
        self.plan.registers += 1
        self.reg[v] = r
        return r

    def r(self, v: SSAValue) -> int:
        if v not in self.reg:
            raise PlanError(f"@{self.f.sym_name.data}: value used before it is defined")
        return self.reg[v]

    def build(self) -> HostPlan:
        f = self.f
        attrs = f.arg_attrs.data if f.arg_attrs is not None else [None] * len(f.body.block.args)
        for i, (arg, a) in enumerate(zip(f.body.block.args, attrs)):
            if not isinstance(arg.type, MemRefType):
                raise PlanError(f"@{f.sym_name.data}: argument {i} is not a buffer ({arg.type})")
            d = a.data if a is not None else {}
            spec = BufferSpec.of(arg.type)
            if INPUT_ATTR in d:
                arg_spec = ArgSpec(i, "input", spec, _int(d[INPUT_ATTR]), name=arg.name_hint or "")
            elif OUTPUT_ATTR in d:
                dims = ()
                if RESULT_DIMS_ATTR in d:
                    flat = d[RESULT_DIMS_ATTR]
                    assert isinstance(flat, DenseArrayBase)
                    vals = list(flat.get_values())
                    dims = tuple(zip(vals[0::2], vals[1::2]))
                arg_spec = ArgSpec(i, "output", spec, _int(d[OUTPUT_ATTR]), result_dims=dims)
            elif WEIGHT_ATTR in d:
                part = d.get(WEIGHT_PART_ATTR)
                arg_spec = ArgSpec(
                    i,
                    "weight",
                    spec,
                    weight_name=_str(d[WEIGHT_ATTR]),
                    weight_part=_str(part) if part is not None else "",
                )
            else:
                raise PlanError(
                    f"@{f.sym_name.data}: argument {i} is not tagged as input, weight or output "
                    "(run quantir-bufferize)"
                )
            if ROW_INDICES_ATTR in d:
                tables = d[ROW_INDICES_ATTR]
                assert isinstance(tables, DenseArrayBase)
                arg_spec = replace(arg_spec, row_indices_of=tuple(tables.get_values()))
            self.plan.args.append(arg_spec)
            self.reg[arg] = i
        self.plan.registers = len(f.body.block.args)

        # Size arithmetic and checks that only read argument shapes run first,
        # so a failing check leaves every output untouched.
        early_regs = set(range(len(f.body.block.args)))
        early: list[Step] = []
        body: list[Step] = []
        for op in f.body.block.ops:
            step = self.step_for(op)
            if step is None:
                continue
            inputs = [a for a in step.args if isinstance(a, int) and not isinstance(a, bool)]
            if step.kind == "int":
                inputs = []
            elif step.kind == "dim":
                inputs = [step.args[0]]
            if step.kind in ("check", "int", "dim", "binop", "cmp") and all(
                i in early_regs for i in inputs
            ):
                early.append(step)
                early_regs.add(step.target)
            else:
                body.append(step)
        self.plan.steps = early + body
        return self.plan

    def step_for(self, op) -> Step | None:
        match op:
            case arith.ConstantOp():
                if not isinstance(op.value, IntegerAttr):
                    raise PlanError(f"host code has a non-integer constant {op.value}")
                return Step("int", self.new(op.result), (op.value.value.data,))
            case memref.DimOp():
                idx = op.index.owner
                if not isinstance(idx, arith.ConstantOp):
                    raise PlanError("memref.dim needs a constant dimension")
                return Step("dim", self.new(op.result), (self.r(op.source), idx.value.value.data))
            case arith.CmpiOp():
                cmp = _CMP[op.predicate.value.data]
                return Step("cmp", self.new(op.result), (cmp, self.r(op.lhs), self.r(op.rhs)))
            case cf.AssertOp():
                return Step("check", -1, (self.r(op.arg), op.msg.data))
            case memref.AllocOp():
                t = op.memref.type
                assert isinstance(t, MemRefType)
                spec = BufferSpec.of(t)
                dyn = [self.r(v) for v in op.dynamic_sizes]
                return Step("alloc", self.new(op.memref), (spec, tuple(dyn)))
            case memref.DeallocOp():
                return Step("free", -1, (self.r(op.memref),))
            case memref.CopyOp():
                return Step("copy", -1, (self.r(op.source), self.r(op.destination)))
            case memref.CollapseShapeOp():
                groups = tuple(
                    tuple(i.value.data for i in group.data) for group in op.reassociation.data
                )
                return Step("collapse", self.new(op.result), (self.r(op.src), groups))
            case memref.ExpandShapeOp():
                static = tuple(
                    -1 if d == DYNAMIC_INDEX else d for d in op.static_output_shape.get_values()
                )
                dyn = tuple(self.r(v) for v in op.output_shape)
                return Step("expand", self.new(op.result), (self.r(op.src), static, dyn))
            case scf.ParallelOp() if LAUNCH_ATTR in op.attributes:
                return self.launch(op)
            case func.ReturnOp():
                return None
            case _ if type(op) in _INT_BINOPS and isinstance(op.results[0].type, IndexType):
                fn = _INT_BINOPS[type(op)]
                return Step("binop", self.new(op.results[0]), (fn, self.r(op.lhs), self.r(op.rhs)))
        raise PlanError(f"'{op.name}' cannot run in host code")

    def launch(self, loop: scf.ParallelOp) -> Step:
        """The launch an `scf.parallel` marked `qrt.launch` stands for (module docstring)."""
        mark = loop.attributes[LAUNCH_ATTR]
        ops = list(loop.body.block.ops)
        calls = [o for o in ops if isinstance(o, func.CallOp)]
        if (
            not isinstance(mark, DictionaryAttr)
            or len(loop.upperBound) != 1
            or len(calls) != 1
            or len(calls[0].arguments) < 2
        ):
            raise PlanError("a qrt.launch loop must be one-dimensional and call one kernel")
        call = calls[0]
        sizes = []
        for key in ("threads_per_block", "items_per_block"):
            value = mark.data.get(key)
            sizes.append(value.value.data if isinstance(value, IntegerAttr) else 0)
        args = tuple(self.r(a) for a in call.arguments[2:])
        launch = (call.callee.root_reference.data, args, self.r(loop.upperBound[0]), *sizes)
        return Step("launch", -1, launch)


def _int(a: Attribute) -> int:
    assert isinstance(a, IntegerAttr)
    return a.value.data


def _str(a: Attribute) -> str:
    assert isinstance(a, StringAttr)
    return a.data


# A plan as data (JSON-ready), so a compiled module's cache entry can keep its
# host plans and a new process need not parse host IR again. The encoding is
# generic over step arguments (ints, strings, tuples, buffer specs and the
# named integer functions), so it does not depend on how plans are read from IR.

_FUNCTIONS: dict[str, Callable] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "min": min,
    "max": max,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
_FUNCTION_NAMES = {id(f): name for name, f in _FUNCTIONS.items()}

# Each step kind's arguments: r a register read, * a tuple of registers read,
# i an int, s a string, f a named function, b a buffer spec, g a tuple of ints
# (nested). A plan read from data must match these.
_STEP_ARGS: dict[str, str] = {
    "int": "i",
    "dim": "ri",
    "binop": "frr",
    "cmp": "frr",
    "check": "rs",
    "alloc": "b*",
    "free": "r",
    "copy": "rr",
    "collapse": "rg",
    "expand": "rg*",
    "launch": "s*rii",
}


def _int_tree(v: object) -> bool:
    if isinstance(v, tuple):
        return all(_int_tree(x) for x in v)
    return type(v) is int


def _matches(role: str, v: object) -> bool:
    if role in "ri":
        return type(v) is int
    if role == "*":
        return isinstance(v, tuple) and all(type(x) is int for x in v)
    if role == "s":
        return isinstance(v, str)
    if role == "f":
        return callable(v)
    if role == "b":
        return isinstance(v, BufferSpec)
    return isinstance(v, tuple) and _int_tree(v)  # "g"


_ARG_KINDS = ("input", "weight", "output")
_MAX_PLAN_ITEMS = 1 << 20


def _encode(value: object) -> object:
    if isinstance(value, bool) or value is None:
        raise PlanError(f"cannot encode {value!r} in a plan")
    if isinstance(value, int | str):
        return value
    if isinstance(value, tuple):
        return {"t": [_encode(v) for v in value]}
    if isinstance(value, BufferSpec):
        return {"buffer": [list(value.dtypes), list(value.shape)]}
    if callable(value) and id(value) in _FUNCTION_NAMES:
        return {"fn": _FUNCTION_NAMES[id(value)]}
    raise PlanError(f"cannot encode {value!r:.60} in a plan")


def _decode(value: object, depth: int = 0) -> object:
    if depth > 8:
        raise ValueError("plan data nested too deeply")
    if type(value) is int or type(value) is str:
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((tag, body),) = value.items()
        if tag == "t" and isinstance(body, list):
            return tuple(_decode(v, depth + 1) for v in body)
        if tag == "fn" and isinstance(body, str) and body in _FUNCTIONS:
            return _FUNCTIONS[body]
        if tag == "buffer" and isinstance(body, list) and len(body) == 2:
            dtypes, shape = body
            if (
                isinstance(dtypes, list)
                and dtypes
                and all(isinstance(d, str) and d in _DTYPES for d in dtypes)
                and isinstance(shape, list)
                and all(type(d) is int and d >= -1 for d in shape)
            ):
                return BufferSpec(tuple(dtypes), tuple(shape))
    raise ValueError(f"bad plan value {value!r:.60}")


_DTYPES = frozenset({"float32", "float16", "uint8", "int8", "int32", "uint32", "int64", "uint64"})


def plan_to_data(plan: HostPlan) -> dict:
    """`plan` as JSON-ready data (`plan_from_data` reads it back)."""
    return {
        "name": plan.name,
        "registers": plan.registers,
        "args": [
            [
                a.index,
                a.kind,
                _encode(a.spec),
                a.position,
                a.weight_name,
                a.weight_part,
                [list(d) for d in a.result_dims],
                a.name,
                list(a.row_indices_of),
            ]
            for a in plan.args
        ],
        "steps": [[s.kind, s.target, [_encode(v) for v in s.args]] for s in plan.steps],
    }


def plan_from_data(data: object) -> HostPlan:
    """The plan `plan_to_data` wrote; ValueError for anything else.

    Cached plans are untrusted input: every argument and step is checked for
    the types and shapes `plan_to_data` writes, and every register a step
    reads must be an argument or written by an earlier step."""
    if not isinstance(data, dict) or set(data) != {"name", "registers", "args", "steps"}:
        raise ValueError("plan: wrong fields")
    name, registers, args, steps = data["name"], data["registers"], data["args"], data["steps"]
    if not isinstance(name, str) or type(registers) is not int or not 0 <= registers:
        raise ValueError("plan: bad name or register count")
    if not isinstance(args, list) or not isinstance(steps, list):
        raise ValueError("plan: bad arguments or steps")
    if len(args) + len(steps) > _MAX_PLAN_ITEMS or registers > _MAX_PLAN_ITEMS:
        raise ValueError("plan: too large")
    plan = HostPlan(name, [], registers=registers)
    for i, a in enumerate(args):
        if not isinstance(a, list) or len(a) != 9:
            raise ValueError("plan: bad argument")
        index, kind, spec, position, weight, part, dims, arg_name, tables = a
        spec = _decode(spec)
        if (
            index != i
            or kind not in _ARG_KINDS
            or not isinstance(spec, BufferSpec)
            or type(position) is not int
            or position < 0
            or not all(isinstance(s, str) for s in (weight, part, arg_name))
            or not isinstance(dims, list)
            or not all(
                isinstance(d, list) and len(d) == 2 and all(type(v) is int for v in d) for d in dims
            )
            or not isinstance(tables, list)
            or not all(type(t) is int and 0 <= t < len(args) for t in tables)
        ):
            raise ValueError(f"plan: bad argument {i}")
        dims = tuple(map(tuple, dims))
        plan.args.append(
            ArgSpec(index, kind, spec, position, weight, part, dims, arg_name, tuple(tables))
        )
    defined = [True] * len(args) + [False] * max(0, registers - len(args))
    if len(defined) != registers:
        raise ValueError("plan: fewer registers than arguments")
    for s in steps:
        if not isinstance(s, list) or len(s) != 3:
            raise ValueError("plan: bad step")
        kind, target, values = s
        roles = _STEP_ARGS.get(kind) if isinstance(kind, str) else None
        if roles is None or not isinstance(values, list) or len(values) != len(roles):
            raise ValueError(f"plan: bad step {kind!r:.40}")
        decoded = tuple(_decode(v) for v in values)
        for role, v in zip(roles, decoded):
            if not _matches(role, v):
                raise ValueError(f"plan: step {kind}: bad argument {v!r:.40}")
            reads = (v,) if role == "r" else v if role == "*" else ()
            for r in reads:
                if type(r) is not int or not 0 <= r < registers or not defined[r]:
                    raise ValueError(f"plan: step {kind} reads an undefined register")
        if type(target) is not int or not -1 <= target < registers:
            raise ValueError(f"plan: step {kind} writes a bad register")
        if target >= 0:
            defined[target] = True
        plan.steps.append(Step(kind, target, decoded))
    return plan
