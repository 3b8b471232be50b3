"""The base class of every error quantir raises on purpose.

`QuantirError` lets a caller catch what quantir reports about its input
(IR that does not parse or verify, a buffer or weight that does not match,
a malformed weight file, a missing GPU) in one `except`, while a bug (any
other exception) still surfaces. Subclasses say the kind; most also derive
from the builtin a caller would expect (`ValueError` for bad values,
`RuntimeError` for an unavailable device), so older `except ValueError`
code keeps working. It lives in the lowest layer so that every package can
derive from it (README.md, "Errors", lists the subclasses).
"""

from __future__ import annotations

__all__ = ["QuantirError"]


class QuantirError(Exception):
    """An error quantir reports about its input or environment, never a bug."""
