"""Shape rules of the graph builder, on dimensions that may be symbols.

A symbolic dimension only equals itself: "batch" and "seq" may differ at run
time, and so may "batch" and 4, so the builder rejects both wherever the ops
need equal sizes. This is stricter than the IR (which only sees `?`) on
purpose: a mistake is reported where the graph is built, not when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from quantir.compiler.graph.types import Dim, format_shape
from quantir.dialects.broadcasting import BroadcastError
from quantir.dialects.broadcasting import broadcast_shapes as _broadcast

__all__ = ["broadcast_shapes", "require_equal", "require_static"]


def require_equal(what: str, a: Dim, b: Dim, a_name: str, b_name: str) -> Dim:
    """The common value of two dimensions that must be equal, else ValueError."""
    if a == b:
        return a
    if isinstance(a, str) or isinstance(b, str):
        raise ValueError(
            f"{what}: {a_name} is {a} but {b_name} is {b}; a symbolic dimension only matches itself"
        )
    raise ValueError(f"{what}: {a_name} is {a} but {b_name} is {b}; they must be equal")


def require_static(what: str, dim: Dim, name: str) -> int:
    if not isinstance(dim, int):
        raise ValueError(f"{what}: {name} must be a static size, got the symbol {dim!r}")
    return dim


def broadcast_shapes(what: str, a: Sequence[Dim], b: Sequence[Dim]) -> tuple[Dim, ...]:
    """The shape of an elementwise result, by qnn's broadcasting rule
    (quantir.dialects.broadcasting), with errors worded for symbolic shapes."""
    try:
        # A symbol only equals itself: two unequal dimensions never agree.
        return _broadcast(a, b, lambda x, y, from_end: None)
    except BroadcastError as e:
        x, y = e.larger, e.smaller
        if e.kind == "stretch":
            raise ValueError(
                f"{what}: cannot broadcast {format_shape(a)} with {format_shape(b)}: "
                f"dimension {e.from_end} of the higher-rank operand is 1 but the other "
                f"operand's is {y} (only the lower-rank operand broadcasts)"
            ) from None
        note = (
            "; a symbolic dimension only matches itself"
            if isinstance(x, str) or isinstance(y, str)
            else ""
        )
        raise ValueError(
            f"{what}: cannot broadcast {format_shape(a)} with {format_shape(b)}: "
            f"dimension {e.from_end} is {x} in one and {y} in the other (trailing dimensions "
            f"must be equal or 1{note})"
        ) from None
