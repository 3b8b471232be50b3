"""The broadcasting rule of the elementwise ops (qnn.add, qnn.mul), in one place.

Numpy's rule, restricted to what graphs need: the lower-rank operand lines
up with the trailing dimensions of the other; a size-1 dimension broadcasts,
except a 1 in the higher-rank operand (the larger operand is never
stretched). The rule is written once over any kind of dimension: the
verifier's (static or dynamic), the graph builder's (static or symbolic) and
bufferization's (static or "equal to this argument's dimension"). What two
unequal, non-1 dimensions make is the caller's `merge`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from quantir.dialects.errors import QuantirError

__all__ = ["BroadcastError", "broadcast_shapes"]

D = TypeVar("D")


class BroadcastError(ValueError, QuantirError):
    """Two shapes do not broadcast; callers word it (they format shapes differently).

    ``kind`` is "stretch" (the higher-rank operand has a 1 where the other
    does not) or "mismatch"; ``from_end`` is the dimension counted from the
    end (-1 is the last); ``larger`` and ``smaller`` are that dimension in the
    higher- and lower-rank operand (the first and second when ranks are equal).
    """

    def __init__(self, kind: str, from_end: int, larger: object, smaller: object) -> None:
        super().__init__(f"cannot broadcast: {kind} at dimension {from_end}")
        self.kind = kind
        self.from_end = from_end
        self.larger = larger
        self.smaller = smaller


def broadcast_shapes(
    a: Sequence[D], b: Sequence[D], merge: Callable[[D, D, int], D | None]
) -> tuple[D, ...]:
    """The shape of an elementwise result of operands shaped `a` and `b`.

    Equal dimensions and 1s follow the rule; for two other dimensions,
    `merge(dim of a, dim of b, from_end)` gives the result's (None: they
    cannot agree).
    Raises BroadcastError.
    """
    a_is_larger = len(a) >= len(b)
    big, small = (a, b) if a_is_larger else (b, a)
    lead = len(big) - len(small)
    out: list[D] = list(big[:lead])
    for i, (x, y) in enumerate(zip(big[lead:], small, strict=True)):
        from_end = i - len(small)
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            if len(a) != len(b):
                raise BroadcastError("stretch", from_end, x, y)
            out.append(y)
        else:
            merged = merge(x, y, from_end) if a_is_larger else merge(y, x, from_end)
            if merged is None:
                raise BroadcastError("mismatch", from_end, x, y)
            out.append(merged)
    return tuple(out)
