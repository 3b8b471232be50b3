"""Values of a graph under construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from xdsl.ir import SSAValue

from quantir.compiler.graph.types import Dim, TensorType, format_shape
from quantir.dialects.encoding import QuantizationConfig, QuantizationEncoding
from quantir.dialects.weight import DType

if TYPE_CHECKING:
    from quantir.compiler.graph.builder import Graph

__all__ = ["TensorValue", "WeightOrigin"]


@dataclass(frozen=True)
class WeightOrigin:
    """Which declared weight (and which of its stored tensors) a value is."""

    name: str
    encoding: QuantizationEncoding | None
    part: str  # "" for GGUF and float weights; "qweight", ... for GPTQ
    config: QuantizationConfig | None
    checkpoint_format: str | None


class TensorValue:
    """A tensor produced inside a Graph: a graph input, a weight, or an op's result.

    Supports ``a + b``, ``a * b`` (elementwise, with trailing broadcasting)
    and ``x @ w`` (float matmul); ``shape`` keeps symbolic dimensions by name.
    """

    __slots__ = ("_graph", "_origin", "_type", "_value")

    # Makes numpy hand `array + value` to __radd__ (a clear TypeError) instead
    # of applying the operator element by element.
    __array_ufunc__ = None

    def __init__(
        self,
        graph: Graph,
        value: SSAValue,
        type_: TensorType,
        origin: WeightOrigin | None = None,
    ) -> None:
        self._graph = graph
        self._value = value
        self._type = type_
        self._origin = origin

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def type(self) -> TensorType:
        return self._type

    @property
    def dtype(self) -> DType:
        return self._type.dtype

    @property
    def shape(self) -> list[Dim]:
        """The dimensions: ints, and symbol names for dynamic ones (a copy)."""
        return list(self._type.shape)

    @property
    def rank(self) -> int:
        return self._type.rank

    @property
    def device(self):
        return self._type.device

    @property
    def weight_origin(self) -> WeightOrigin | None:
        """The weight this value is (None for inputs and op results)."""
        return self._origin

    def to_mlir(self) -> SSAValue:
        """The xDSL SSA value behind this tensor."""
        return self._value

    def _binary(self, other: object, op_name: str, reflected: bool = False):
        from quantir.compiler.graph import ops

        if not isinstance(other, TensorValue):
            symbol = {"add": "+", "mul": "*", "matmul": "@"}[op_name]
            pair = ("TensorValue", type(other).__name__)
            left, right = reversed(pair) if reflected else pair
            raise TypeError(
                f"unsupported operands for {symbol}: {left} and {right} "
                "(quantir graphs combine graph tensors only; they have no constants)"
            )
        lhs, rhs = (other, self) if reflected else (self, other)
        return getattr(ops, op_name)(lhs, rhs)

    def __add__(self, other: object) -> TensorValue:
        return self._binary(other, "add")

    def __radd__(self, other: object) -> TensorValue:
        return self._binary(other, "add", reflected=True)

    def __mul__(self, other: object) -> TensorValue:
        return self._binary(other, "mul")

    def __rmul__(self, other: object) -> TensorValue:
        return self._binary(other, "mul", reflected=True)

    def __matmul__(self, other: object) -> TensorValue:
        return self._binary(other, "matmul")

    def __rmatmul__(self, other: object) -> TensorValue:
        return self._binary(other, "matmul", reflected=True)

    # A graph value has no truth value; `if value:` is a mistake, not a test.
    def __bool__(self) -> bool:
        raise TypeError("a TensorValue has no truth value (it is computed when the graph runs)")

    def __repr__(self) -> str:
        what = f", weight {self._origin.name!r}" if self._origin is not None else ""
        part = f" {self._origin.part}" if self._origin is not None and self._origin.part else ""
        return f"TensorValue({self.dtype.name} {format_shape(self._type.shape)}{what}{part})"
