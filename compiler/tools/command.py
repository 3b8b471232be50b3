"""How quantir's command-line tools end: one-line errors and exit statuses.

`quantir-run` and `quantir` share this: a user error is one line on stderr,
"PROG: error: ...", with exit status 1; a bug is one line too, naming the
exception and asking for ``--traceback``; Ctrl-C is status 130 and a closed
pipe (``... | head``) is not an error.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
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


def run_command(
    prog: str,
    body: Callable[[], int],
    user_errors: tuple[type[BaseException], ...],
    *,
    traceback: bool,
    err: TextIO,
) -> int:
    """Run a command's body; report what it raises as one line and return the status."""
    try:
        return body()
    except KeyboardInterrupt:
        err.write(f"\n{prog}: error: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away: not an error. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except user_errors as e:
        if traceback:
            raise
        err.write(f"{prog}: error: {one_line(e)}\n")
        return 1
    except Exception as e:  # a bug: still one line unless asked
        if traceback:
            raise
        err.write(
            f"{prog}: error: internal error ({type(e).__name__}: {one_line(e)}); "
            "rerun with --traceback to report it\n"
        )
        return 1
