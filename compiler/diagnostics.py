"""Source locations for user-facing errors.

xDSL's parser does not record where each operation came from, so a verifier
failure cannot point at the user's line. `LocatingParser` stamps every parsed
operation with a `FileLineColLoc`, and `verify_located` turns the first
verifier failure into `FILE:LINE:COL: error: MESSAGE`, as MLIR tools do.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException

from quantir.compiler.dominance import first_dominance_error
from quantir.compiler.source_limits import check_source
from quantir.dialects.errors import QuantirError


class UserError(QuantirError):
    """An error in the user's input: reported as one message, never a traceback."""


class LocatingParser(Parser):
    """A Parser that records the file, line and column of every operation."""

    def __init__(self, ctx: Context, text: str, name: str = "<input>", line_offset: int = 0):
        super().__init__(ctx, text, name)
        self._text = text
        self._name = name
        self._line_offset = line_offset

    def parse_operation(self) -> Operation:
        start_span = self._current_token.span
        start = start_span.start
        try:
            op = super().parse_operation()
        except ParseError:
            raise
        except (VerifyException, DiagnosticException) as e:
            # A type constraint checked while parsing (a declarative format's
            # operand types): blame the op being parsed, as a parse error is.
            raise ParseError(start_span, error_message(e)) from None
        if not isinstance(op.location, FileLineColLoc):
            line = self._text.count("\n", 0, start) + 1 + self._line_offset
            col = start - (self._text.rfind("\n", 0, start) + 1) + 1
            op.location = FileLineColLoc(StringAttr(self._name), IntAttr(line), IntAttr(col))
        return op


def location_of(op: Operation) -> str | None:
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return f"{loc.filename.data}:{loc.line.data}:{loc.column.data}"
    return None


def failing_ops(module: Operation) -> list[tuple[Operation, Exception]]:
    """Every operation whose own verifier fails, in program order, with its error."""
    failures: list[tuple[Operation, Exception]] = []
    for op in module.walk():
        try:
            op.verify(verify_nested_ops=False)
        except (VerifyException, DiagnosticException) as e:
            failures.append((op, e))
    return failures


def first_failing_op(module: Operation) -> tuple[Operation, Exception] | None:
    """The innermost operation whose own verifier fails, in program order."""
    return next(iter(failing_ops(module)), None)


def error_message(error: Exception) -> str:
    """A verifier exception's message (its first argument, as xDSL raises them)."""
    return str(error.args[0] if error.args else error)


def verify_located(module: ModuleOp) -> None:
    """Verify `module`; raise UserError("FILE:LINE:COL: error: ...") on failure."""
    try:
        module.verify()
    except (VerifyException, DiagnosticException) as e:
        found = first_failing_op(module)
        op, err = found if found is not None else (module, e)
        where = location_of(op)
        message = error_message(err)
        prefix = f"{where}: " if where else f"in '{op.name}': "
        raise UserError(f"{prefix}error: {message}") from None
    except RecursionError:
        raise UserError("error: the IR is nested too deeply to verify") from None
    # xDSL's verifier does not check SSA dominance; a use before its
    # definition would otherwise reach the lowering and crash there.
    dominance = first_dominance_error(module)
    if dominance is not None:
        op, message = dominance
        where = location_of(op)
        prefix = f"{where}: " if where else f"in '{op.name}': "
        raise UserError(f"{prefix}error: {message}")


def parse_located(ctx: Context, text: str, name: str, line_offset: int = 0) -> ModuleOp:
    """Parse (not verify) an MLIR module whose ops carry their source locations.

    Input holding only whitespace and comments is an empty module, as in mlir-opt.
    """
    if all(not line.strip() or line.strip().startswith("//") for line in text.splitlines()):
        return ModuleOp([])
    # Text that would hang or overflow xDSL's parser is a located parse error.
    check_source(text, name)
    try:
        return LocatingParser(ctx, text, name, line_offset).parse_module()
    except RecursionError:
        raise UserError(f"{name}: error: the IR is nested too deeply to parse") from None


def format_parse_error(e: ParseError) -> str:
    """`FILE:LINE:COL: error: MESSAGE`, then the source line and a caret under the span."""
    where = e.span.get_location()
    context = e.span.print_with_context(None).splitlines()[1:]  # drop xDSL's location line
    return "\n".join([f"{where}: error: {e.msg}", *context])
