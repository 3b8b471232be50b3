"""Checks on IR text before xDSL's parser sees it.

Two inputs make xDSL 0.75's parser misbehave instead of reporting an error:

- An unterminated string literal: the lexer's string regex
  (``xdsl.utils.mlir_lexer.MLIRLexer._unescaped_characters_regex``,
  ``"(?:[^"\\\\\\n\\v\\f]+|\\\\(?:...))*"``) nests a ``+`` inside a ``*``, so
  when the closing quote is missing Python's regex engine tries every way to
  split the rest of the line: 26 characters take seconds, each more x1.7.
- Deep nesting (``[[[[...]]]]``, ``{a = {a = ...}}``, ``tuple<tuple<...>>``):
  the parser recurses a few frames per level and hits Python's recursion
  limit near 100 levels.

`check_source` scans the text once, in linear time, with the same rules for
comments and strings as the lexer, and raises xDSL's `ParseError` at the
offending character, so both are ordinary located parse errors.
"""

from __future__ import annotations

import re

from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Input, Span

# Deeper than any IR quantir writes or reads (regions and types nest a few
# levels), well below where xDSL's recursive parser runs out of stack.
MAX_NESTING = 64

# The lexer's string rule without the nested quantifier: one character or one
# escape per step, so a failed match costs linear time.
_STRING = r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"'
_TOKENS = re.compile(
    rf"""
      (?P<comment>//[^\n]*)
    | (?P<string>{_STRING})
    | (?P<quote>")
    | (?P<arrow>->)
    | (?P<open>[<(\[{{])
    | (?P<close>[>)\]}}])
    | [^"/<>()\[\]{{}}-]+
    | [/-]
    """,
    re.VERBOSE,
)


def check_source(text: str, name: str) -> None:
    """Raise ParseError at an unterminated string literal or at nesting deeper
    than MAX_NESTING brackets; return None for text the parser can take."""
    depth = 0
    for m in _TOKENS.finditer(text):
        kind = m.lastgroup
        if kind == "quote":
            raise ParseError(
                Span(m.start(), m.end(), Input(text, name)),
                "string literal is not closed on its line (or holds an invalid escape; "
                'valid: \\n \\t \\\\ \\" and two hex digits)',
            )
        if kind == "open":
            depth += 1
            if depth > MAX_NESTING:
                raise ParseError(
                    Span(m.start(), m.end(), Input(text, name)),
                    f"nesting deeper than {MAX_NESTING} levels of brackets",
                )
        elif kind == "close":
            depth = max(depth - 1, 0)
