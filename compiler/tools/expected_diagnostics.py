"""`--verify-diagnostics`: check a file's diagnostics against its annotations.

The annotations are MLIR's (mlir-opt's SourceMgrDiagnosticVerifierHandler):

    // expected-error {{text}}          on this line
    // expected-error@+1 {{text}}       N lines below (@-N: above)
    // expected-error@above {{text}}    the closest line above without an annotation
    // expected-error@below {{text}}    the closest line below without an annotation
    // expected-error@unknown {{text}}  a diagnostic without a location

with `error`, `warning`, `note` or `remark`. A diagnostic matches an
expectation of its kind on its line whose text is a substring of its message.
A diagnostic that matches none, or an expectation that no diagnostic
matched, is a failure: the driver reports each and exits with status 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("error", "warning", "note", "remark")

_ANNOTATION = re.compile(
    r"expected-(?P<kind>error|warning|note|remark)"
    r"(?:\s*@(?P<where>[+-]\d+|above|below|unknown))?"
    r"\s*\{\{(?P<text>.*)\}\}\s*$"
)
# An annotation with a designator but no `{{text}}` (a typo, not prose that
# mentions `expected-error`).
_MALFORMED = re.compile(r"expected-(?:error|warning|note|remark)\s*@")


class AnnotationError(ValueError):
    """An `expected-*` annotation that cannot be read (reported with its line)."""


@dataclass(frozen=True)
class Diagnostic:
    """One message the driver produced: its kind, source line (None: unknown) and text."""

    kind: str
    line: int | None
    message: str
    location: str | None = None
    """`FILE:LINE:COL`, for reporting an unexpected diagnostic."""


@dataclass
class Expectation:
    """One `expected-*` annotation: the kind and text it wants on `line` (None: @unknown)."""

    kind: str
    line: int | None
    text: str
    annotation_line: int
    matched: bool = field(default=False, compare=False)

    def accepts(self, diagnostic: Diagnostic) -> bool:
        return (
            self.kind == diagnostic.kind
            and self.line == diagnostic.line
            and self.text in diagnostic.message
        )


def parse_expectations(text: str, first_line: int = 1) -> list[Expectation]:
    """The annotations of `text`, whose first line is line `first_line` of the file."""
    expectations: list[Expectation] = []
    below: list[Expectation] = []  # waiting for the next line without annotations
    last_plain_line: int | None = None
    for index, line_text in enumerate(text.split("\n")):
        line = first_line + index
        match = _ANNOTATION.search(line_text)
        if match is None:
            if _MALFORMED.search(line_text):
                raise AnnotationError(
                    f"line {line}: malformed annotation: expected "
                    "'expected-<kind>[@+N|@-N|@above|@below|@unknown] {{text}}'"
                )
            for expectation in below:
                expectation.line = line
            below.clear()
            last_plain_line = line
            continue
        kind, where, wanted = match["kind"], match["where"], match["text"]
        if not wanted:
            raise AnnotationError(f"line {line}: expected-{kind} with empty text {{{{}}}}")
        expectation = Expectation(kind, line, wanted, line)
        if where == "unknown":
            expectation.line = None
        elif where == "above":
            if last_plain_line is None:
                raise AnnotationError(f"line {line}: expected-{kind}@above has no line above it")
            expectation.line = last_plain_line
        elif where == "below":
            below.append(expectation)
        elif where is not None:
            expectation.line = line + int(where)
        expectations.append(expectation)
    if below:
        raise AnnotationError(
            f"line {below[0].annotation_line}: expected-{below[0].kind}@below has no line below it"
        )
    return expectations


def check_diagnostics(
    expectations: list[Expectation], diagnostics: list[Diagnostic], filename: str
) -> list[str]:
    """The failures, as `FILE:LINE[:COL]: error: ...` lines (none: all matched)."""
    failures: list[str] = []
    for diagnostic in diagnostics:
        candidates = [e for e in expectations if e.accepts(diagnostic)]
        # Prefer an expectation not yet used, so that two equal diagnostics on
        # one line need two annotations to be both reported as matched.
        chosen = next((e for e in candidates if not e.matched), None) or next(
            iter(candidates), None
        )
        if chosen is not None:
            chosen.matched = True
            continue
        where = diagnostic.location or (
            f"{filename}:{diagnostic.line}" if diagnostic.line is not None else filename
        )
        failures.append(
            f"{where}: error: unexpected {diagnostic.kind}: {first_line(diagnostic.message)}"
        )
    for expectation in expectations:
        if not expectation.matched:
            failures.append(
                f"{filename}:{expectation.annotation_line}: error: expected {expectation.kind} "
                f'"{expectation.text}" was not produced'
                + (f" (on line {expectation.line})" if expectation.line is not None else "")
            )
    return failures


def first_line(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    return lines[0].strip() if lines else message
