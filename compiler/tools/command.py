"""How quantir's command-line tools end: one-line errors and exit statuses.

`quantir-opt`, `quantir-run` and `quantir` share this: a user error is one line on stderr,
"PROG: error: ...", with exit status 1; a bug is one line too, naming the
exception and asking for ``--traceback``; Ctrl-C is status 130 and a closed
pipe (``... | head``) is not an error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TextIO


def quantir_version() -> str:
    """The installed quantir's version ("unknown" when run from a tree not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("quantir")
    except PackageNotFoundError:
        return "unknown"


def version_text(prog: str) -> str:
    """What `PROG --version` prints: quantir's version and the xDSL it runs on."""
    from importlib.metadata import version

    return f"{prog} {quantir_version()} (xdsl {version('xdsl')})"


_LOCATION_LINE = re.compile(r"^\S+:\d+:\d+$")
_LOCATED_ERROR = re.compile(r"^(\S+:\d+:\d+): error: (.*)$", re.DOTALL)


def one_line(error: BaseException) -> str:
    """The error as one line.

    xDSL's parse errors are "FILE:L:C", the source line, a caret line and
    the message: they become "FILE:L:C: message". Located verifier errors
    ("FILE:L:C: error: message") drop the inner "error:".
    """
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = str(error) or type(error).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and _LOCATION_LINE.match(lines[0].strip()):
        caret = next((i for i, ln in enumerate(lines) if ln.strip().startswith("^")), None)
        if caret is not None and caret + 1 < len(lines):
            text = f"{lines[0].strip()}: " + " ".join(ln.strip() for ln in lines[caret + 1 :])
    m = _LOCATED_ERROR.match(text.strip())
    if m:
        text = f"{m.group(1)}: {m.group(2)}"
    return " ".join(text.split())


def _is_caret_line(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) <= {"^", "~"}


def error_text(error: BaseException) -> str:
    """The error as `one_line` words it, keeping a parse error's source and caret lines.

    A diagnostic that points into the user's source ("FILE:L:C: error: msg",
    the source line, a caret line under the span; or xDSL's order: location,
    source, caret, message) prints as mlir-opt does: the message line, then
    the source line and the caret under it, aligned.
    """
    text = str(error)
    lines = text.splitlines()
    caret = next((i for i, ln in enumerate(lines) if _is_caret_line(ln)), None)
    if caret is None or caret == 0 or isinstance(error, OSError):
        return one_line(error)
    if caret < 2 or not lines[caret - 1].strip():  # no location, or nothing to point at
        return one_line(error)
    head, tail = lines[: caret - 1], lines[caret + 1 :]
    if _LOCATION_LINE.match(head[0].strip()):  # xDSL's order: the message comes last
        words = " ".join(ln.strip() for ln in head[1:] + tail if ln.strip())
        header = f"{head[0].strip()}: {words}"
    else:  # "FILE:L:C: error: msg" above the source line
        header = one_line(ValueError("\n".join(head + tail)))
    return f"{header}\n{lines[caret - 1]}\n{lines[caret]}"


def parse_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when argparse already answered
    (--help, --version: 0; a usage error it reported: 2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2


def silence_stdout() -> None:
    """After a broken pipe (``... | head``): the reader went away, which is not
    an error. Point stdout at /dev/null so that the interpreter's final flush
    does not fail again and print a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run_command(
    prog: str,
    body: Callable[[], int],
    user_errors: tuple[type[BaseException], ...],
    *,
    traceback: bool,
    err: TextIO,
) -> int:
    """Run a command's body; report what it raises as one line and return the status.

    Exit statuses: 0 success (also when stdout's reader went away), 1 an
    error (user errors, out of memory, input nested too deeply; a bug says
    "internal error"), 130 interrupted (Ctrl-C). Commands write their files
    atomically, so an interrupted or failed run leaves no partial output.
    With `traceback`, errors other than Ctrl-C and a closed pipe propagate.
    """
    try:
        return body()
    except KeyboardInterrupt:
        err.write(f"\n{prog}: error: interrupted\n")
        return 130
    except BrokenPipeError:
        silence_stdout()
        return 0
    except MemoryError:
        if traceback:
            raise
        err.write(f"{prog}: error: out of memory (a size in the input is too large)\n")
        return 1
    except RecursionError:
        if traceback:
            raise
        err.write(f"{prog}: error: the input is nested too deeply to process\n")
        return 1
    except user_errors as e:
        if traceback:
            raise
        err.write(f"{prog}: error: {error_text(e)}\n")
        return 1
    except Exception as e:  # a bug: still one line unless asked
        if traceback:
            raise
        err.write(
            f"{prog}: error: internal error ({type(e).__name__}: {one_line(e)}); "
            "rerun with --traceback to report it\n"
        )
        return 1
