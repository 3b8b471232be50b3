"""`Graph`: build a quantir graph function from Python.

    with Graph("mlp", input_types=[TensorType(DType.float32, ["batch", 4096])]) as g:
        x = g.inputs[0]
        w = g.add_weight(Weight("w", DType.uint8, [4096, 4096],
                                quantization_encoding=QuantizationEncoding.Q4_K))
        g.output(ops.qmatmul(QuantizationEncoding.Q4_K, None, x, w))
    print(g)                        # the MLIR text, as a hand-written graph file

The builder only builds IR: `quantir.runtime.compile_graph(g)` compiles it
for a device and returns a callable.

The graph is one `func.func` whose body holds, in creation order, a
`quant.weight` op per weight and one op per ops.* call; it is the same IR a
graph file spells out by hand (tensor value form of the quant/qnn ops).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, VerifyException

from quantir.compiler.graph.types import TensorType
from quantir.compiler.graph.value import TensorValue, WeightOrigin
from quantir.dialects.encoding import QuantizationEncoding, check_checkpoint_format
from quantir.dialects.quant import GPTQConfigAttr, WeightOp
from quantir.dialects.weight import Weight

__all__ = ["Graph"]

# A graph name becomes the function's symbol; keep it a bare MLIR identifier
# so that it prints without quotes and `quantir-run --function NAME` finds it.
_GRAPH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")
_INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")

# The graphs of enclosing `with Graph(...)` blocks, per thread (innermost last).
_building = threading.local()


def _stack() -> list[Graph]:
    if not hasattr(_building, "graphs"):
        _building.graphs = []
    return _building.graphs


class Graph:
    """A graph function under construction (see the module docstring).

    ``Graph(name, forward=None, input_types=())``: with ``forward``, the graph
    is built at once by calling ``forward(*inputs)`` and outputting what it
    returns. ``input_names`` (a quantir addition) names the function's
    arguments in the printed IR (`%x` instead of `%0`), which also lets
    `quantir-run --input x=...` address them.
    """

    def __init__(
        self,
        name: str,
        forward: Callable[..., object] | None = None,
        input_types: Sequence[TensorType] = (),
        *,
        input_names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _GRAPH_NAME.fullmatch(name):
            raise ValueError(
                f"Graph name must be an identifier (letters, digits, _, $, .; not starting "
                f"with a digit), got {name!r}"
            )
        if isinstance(input_types, TensorType):
            input_types = [input_types]
        types = list(input_types)
        for i, t in enumerate(types):
            if not isinstance(t, TensorType):
                raise ValueError(
                    f"Graph {name!r}: input_types[{i}] must be a TensorType, got {t!r}"
                )
            if t.rank == 0:
                raise ValueError(
                    f"Graph {name!r}: input {i} is a scalar; graph inputs are tensors of "
                    "rank 1 or more"
                )
        self.name = name
        self._block = Block(arg_types=[t.to_mlir() for t in types])
        if input_names is not None:
            self._name_inputs(list(input_names), len(types))
        self._inputs = tuple(
            TensorValue(self, arg, t) for arg, t in zip(self._block.args, types, strict=True)
        )
        self._weights: dict[str, tuple[tuple, TensorValue | tuple[TensorValue, ...]]] = {}
        self._outputs: tuple[TensorValue, ...] | None = None
        self._module: ModuleOp | None = None
        if forward is not None:
            with self:
                result = forward(*self._inputs)
            outputs = result if isinstance(result, tuple | list) else (result,)
            self.output(*outputs)

    def _name_inputs(self, names: list[str], count: int) -> None:
        if len(names) != count:
            raise ValueError(
                f"Graph {self.name!r}: {len(names)} input_names for {count} input_types"
            )
        for n in names:
            # xDSL strips a trailing `_<digits>` from value names; such a name
            # would print differently from what was asked.
            if (
                not isinstance(n, str)
                or not _INPUT_NAME.fullmatch(n)
                or SSAValue.extract_valid_name(n) != n
            ):
                raise ValueError(
                    f"Graph {self.name!r}: input name {n!r} is not a valid value name "
                    "(an identifier not ending in _<digits>)"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"Graph {self.name!r}: input_names repeat a name: {names}")
        for arg, n in zip(self._block.args, names, strict=True):
            arg.name_hint = n

    # -- the `with` protocol ----------------------------------------------------

    def __enter__(self) -> Graph:
        _stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        stack = _stack()
        if self in stack:
            stack.reverse()
            stack.remove(self)  # the innermost entry of this graph
            stack.reverse()

    @staticmethod
    def current() -> Graph:
        """The innermost graph of an enclosing `with Graph(...)` block (in this thread)."""
        stack = _stack()
        if not stack:
            raise LookupError("no graph is being built: use `with Graph(...) as g:`")
        return stack[-1]

    # -- building ---------------------------------------------------------------

    @property
    def inputs(self) -> tuple[TensorValue, ...]:
        return self._inputs

    @property
    def input_types(self) -> tuple[TensorType, ...]:
        return tuple(v.type for v in self._inputs)

    @property
    def output_types(self) -> tuple[TensorType, ...]:
        self._require_outputs()
        assert self._outputs is not None
        return tuple(v.type for v in self._outputs)

    @property
    def weights(self) -> dict[str, TensorValue | tuple[TensorValue, ...]]:
        """The values of each added weight, by name."""
        return {name: values for name, (_, values) in self._weights.items()}

    def _check_open(self, what: str) -> None:
        if self._outputs is not None:
            raise ValueError(
                f"{what}: graph {self.name!r} is complete (output() was called); "
                "build a new Graph to add more"
            )

    def _append(
        self, op: Operation, result_type: TensorType, origin: WeightOrigin | None = None
    ) -> TensorValue:
        self._block.add_op(op)
        return TensorValue(self, op.results[0], result_type, origin)

    def add_weight(
        self, weight: Weight, *, checkpoint_format: str = "gptq"
    ) -> TensorValue | tuple[TensorValue, ...]:
        """Declare a named weight (a `quant.weight` op) and return its value(s).

        A GGUF-encoded weight gives one uint8 value (the packed bytes, [N,
        K / elements_per_block * block_size]); a GPTQ weight four
        (qweight, qzeros, scales, g_idx); a float weight one value of its
        logical shape. ``checkpoint_format`` ("gptq" or "gptq_v2") says how a
        GPTQ checkpoint stores zero points; other encodings ignore it. Adding
        the same declaration twice returns the same values; a different
        declaration under a used name is an error.
        """
        if not isinstance(weight, Weight):
            raise TypeError(f"add_weight takes a Weight, got {type(weight).__name__}")
        self._check_open(f"add_weight({weight.name!r})")
        encoding = weight.quantization_encoding
        fmt = None
        if encoding is QuantizationEncoding.GPTQ:
            fmt = check_checkpoint_format(checkpoint_format)
        key = (
            weight.dtype,
            weight.shape,
            encoding,
            weight.quantization_config,
            fmt,
        )
        known = self._weights.get(weight.name)
        if known is not None:
            if known[0] != key:
                raise ValueError(
                    f"add_weight: graph {self.name!r} already has a weight named "
                    f"{weight.name!r} with another declaration ({_describe_key(known[0])}; "
                    f"now {_describe_key(key)})"
                )
            return known[1]
        parts = weight.packed_tensors
        types = [TensorType(p.dtype, p.shape) for p in parts]
        config_attr = (
            GPTQConfigAttr.get(weight.quantization_config, fmt)
            if encoding is QuantizationEncoding.GPTQ and fmt is not None
            else None
        )
        op = WeightOp(
            weight.name,
            [t.to_mlir() for t in types],
            encoding,
            list(weight.shape) if encoding is not None else None,
            config_attr,
        )
        self._block.add_op(op)
        values = tuple(
            TensorValue(
                self,
                result,
                t,
                WeightOrigin(weight.name, encoding, p.suffix, weight.quantization_config, fmt),
            )
            for result, t, p in zip(op.results, types, parts, strict=True)
        )
        result = values if encoding is QuantizationEncoding.GPTQ else values[0]
        self._weights[weight.name] = (key, result)
        return result

    def output(self, *values: TensorValue) -> None:
        """Set the graph's results (in order); this completes the graph."""
        self._check_open("output()")
        if not values:
            raise ValueError(f"output(): graph {self.name!r} needs at least one output value")
        for i, v in enumerate(values):
            if not isinstance(v, TensorValue):
                raise TypeError(
                    f"output(): value {i} must be a TensorValue, got {type(v).__name__}"
                )
            if v.graph is not self:
                raise ValueError(
                    f"output(): value {i} belongs to graph {v.graph.name!r}, not {self.name!r}"
                )
        self._block.add_op(func.ReturnOp(*[v.to_mlir() for v in values]))
        self._outputs = tuple(values)
        function = func.FuncOp(
            self.name,
            ([t.to_mlir() for t in self.input_types], [v.type.to_mlir() for v in values]),
            Region(self._block),
        )
        self._module = ModuleOp([function])

    # -- results ----------------------------------------------------------------

    def _require_outputs(self) -> None:
        if self._outputs is None:
            raise ValueError(
                f"graph {self.name!r} has no output yet: call output(...) with its results"
            )

    @property
    def module(self) -> ModuleOp:
        """The graph as a verified xDSL module holding one func.func."""
        self._require_outputs()
        assert self._module is not None
        try:
            self._module.verify()
        except (VerifyException, DiagnosticException) as e:
            # The builder checks every op first; reaching this is a quantir bug
            # or a module edited through this property.
            raise ValueError(f"graph {self.name!r} does not verify: {e}") from None
        return self._module

    def to_mlir(self) -> str:
        """The verified module as MLIR text."""
        out = io.StringIO()
        Printer(stream=out).print_op(self.module)
        return out.getvalue().rstrip("\n") + "\n"

    def __str__(self) -> str:
        return self.to_mlir()

    def __repr__(self) -> str:
        state = "complete" if self._outputs is not None else "open"
        ins = ", ".join(repr(t) for t in self.input_types)
        return f"Graph({self.name!r}, inputs=[{ins}], {state})"


def _describe_key(key: tuple) -> str:
    dtype, shape, encoding, config, fmt = key
    shape_text = "[" + ", ".join(str(d) for d in shape) + "]"
    if encoding is None:
        return f"{dtype.name} {shape_text}"
    if config is None:
        return f"{encoding.value} {shape_text}"
    return (
        f"GPTQ bits={config.bits} group_size={config.group_size} desc_act={config.desc_act} "
        f"sym={config.sym} format={fmt} {shape_text}"
    )
