"""The ``quantir`` command: look into weight files and quantize them.

    quantir inspect FILE [--json] [--metadata [--full]]
    quantir quantize IN OUT --encoding q4_k [--progress] [--arch NAME]
    quantir encodings [--json]

``inspect`` lists a GGUF file's tensors (name, type, logical shape, bytes)
under a header summary; a GPTQ checkpoint directory or .safetensors file is
described by ``quantir.runtime.gptq.describe_checkpoint`` in the same table.
``quantize`` converts float weights (GGUF or .safetensors) to a quantized
GGUF file (see ``quantir.runtime.gguf.convert``). ``encodings`` lists the
packed formats with their block parameters.

User errors end with exit status 1 (2 for bad arguments) and one line on
stderr, "quantir: error: ...", never a traceback (``--traceback`` shows one
for bug reports).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from quantir.compiler.tools.command import parse_arguments, run_command, version_text
from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.errors import QuantirError

__all__ = ["ProgressBar", "build_parser", "main"]

PROG = "quantir"
# Metadata arrays longer than this are summarized, not printed (vocabularies).
_MAX_SHOWN_ARRAY = 16


class CommandError(QuantirError):
    """A user error found by the command itself (reported in one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line: 'quantir: error: ...'."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


# --- formatting shared by GGUF and GPTQ listings ---------------------------


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _printable(text: str) -> str:
    # Metadata strings may hold undecodable bytes (kept as surrogates) or
    # control characters: show them escaped rather than corrupt the terminal.
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in text
    )


@dataclass(frozen=True)
class ArrayPrefix:
    """The first items of a long metadata array and its length (the rest undecoded)."""

    length: int
    first: list[Any]


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(_printable(value), ensure_ascii=False)
    if isinstance(value, ArrayPrefix):
        shown = ", ".join(_format_value(v) for v in value.first)
        return f"[{shown}, ... ({value.length} items)]"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return repr(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, ArrayPrefix):
        return {"array_length": value.length, "first": value.first}
    return value


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Columns name, type, shape, bytes from rows with those keys."""
    header = ("NAME", "TYPE", "SHAPE", "BYTES")
    cells = [
        (
            _printable(str(r["name"])),
            str(r["type"]),
            "[" + ", ".join(map(str, r["shape"])) + "]",
            str(r["nbytes"]),
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = []
    for line in [header, *cells]:
        lines.append(
            "  ".join(
                (cell.rjust(w) if i == 3 else cell.ljust(w))
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    fields = [("file", summary["path"]), ("format", summary["format"])]
    if summary.get("architecture") is not None:
        fields.append(("arch", _printable(summary["architecture"])))
    fields.append(
        (
            "tensors",
            (
                f"{summary['tensor_count']}, {human_bytes(summary['total_bytes'])} "
                f"({summary['total_bytes']} bytes)"
            ),
        )
    )
    fields.append(
        ("types", ", ".join(f"{t} {n}" for t, n in summary["type_counts"].items()) or "-")
    )
    if "metadata_count" in summary:
        fields.append(("metadata", f"{summary['metadata_count']} keys"))
    width = max(len(k) for k, _ in fields) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in fields)


def _type_label(tensor: Any) -> str:
    if tensor.encoding is not None:
        return tensor.encoding.name
    label = tensor.type_name.lower()
    return label if tensor.is_supported else f"{label} (unsupported)"


# --- inspect ---------------------------------------------------------------


def _metadata_values(metadata: Any, full: bool) -> dict[str, Any]:
    """key -> value; arrays longer than _MAX_SHOWN_ARRAY as an ArrayPrefix unless `full`
    (only those items are decoded: a vocabulary's quarter-million strings stay in the file)."""
    values: dict[str, Any] = {}
    for key in metadata:
        if metadata.is_array(key) and not full:
            array = metadata.array(key)
            if len(array) > _MAX_SHOWN_ARRAY:
                values[key] = ArrayPrefix(len(array), array[:_MAX_SHOWN_ARRAY])
                continue
        values[key] = metadata[key]
    return values


def _describe_gguf(
    path: Path, full: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    from quantir.runtime.gguf import open_gguf

    model = open_gguf(path)
    rows = [
        {
            "name": t.name,
            "type": _type_label(t),
            "ggml_type": t.type_name,
            "encoding": t.encoding.name if t.encoding is not None else None,
            "supported": t.is_supported,
            "shape": list(t.shape),
            "nbytes": t.nbytes,
        }
        for t in model.tensors
    ]
    summary = {
        "path": str(path),
        "format": f"GGUF v{model.version} (alignment {model.alignment})",
        "version": model.version,
        "architecture": model.architecture,
        "tensor_count": len(rows),
        "total_bytes": model.total_tensor_bytes,
        "type_counts": dict(Counter(r["type"] for r in rows).most_common()),
        "metadata_count": len(model.metadata),
    }
    return summary, rows, _metadata_values(model.metadata, full)


def _describe_checkpoint(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        from quantir.runtime.gptq import describe_checkpoint
    except ImportError as e:
        raise CommandError(
            f"{path}: describing GPTQ/safetensors checkpoints needs quantir.runtime.gptq, "
            f"which is not available ({e})"
        ) from None
    described = describe_checkpoint(path)
    rows = []
    for r in described:
        encoding = r.get("encoding")
        label = encoding.name if isinstance(encoding, QuantizationEncoding) else encoding
        rows.append(
            {
                "name": r["name"],
                "type": str(label if label is not None else r.get("dtype", "-")),
                "encoding": str(label) if label is not None else None,
                "shape": list(r["shape"]),
                "nbytes": int(r["nbytes"]),
            }
        )
    summary = {
        "path": str(path),
        "format": "safetensors checkpoint",
        "tensor_count": len(rows),
        "total_bytes": sum(r["nbytes"] for r in rows),
        "type_counts": dict(Counter(r["type"] for r in rows).most_common()),
    }
    return summary, rows


def _cmd_inspect(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.file)
    metadata: dict[str, Any] | None = None
    if path.is_dir() or path.suffix == ".safetensors":
        summary, rows = _describe_checkpoint(path)
    else:
        summary, rows, metadata = _describe_gguf(path, full=args.full)
    if args.json:
        doc: dict[str, Any] = {"summary": summary, "tensors": rows}
        if metadata is not None:
            doc["metadata"] = {k: _json_value(v) for k, v in metadata.items()}
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    out.write(format_summary(summary) + "\n")
    if args.metadata and metadata is not None:
        out.write("\n")
        for key, value in metadata.items():
            out.write(f"{_printable(key)} = {_format_value(value)}\n")
    out.write("\n" + format_table(rows) + "\n")
    return 0


# --- quantize --------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on a stream, redrawn in place ('\\r')."""

    def __init__(self, stream: TextIO, enabled: bool, width: int = 28) -> None:
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self._last_len = 0

    def __call__(self, done: int, total: int, name: str | None) -> None:
        if not self.enabled:
            return
        if name is None:  # finished: clear the line
            self.stream.write("\r" + " " * self._last_len + "\r")
            self.stream.flush()
            return
        fraction = done / total if total else 1.0
        filled = int(fraction * self.width)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%} {name}"
        line = line[:120]
        self.stream.write("\r" + line.ljust(self._last_len))
        self.stream.flush()
        self._last_len = len(line)


def _parse_encoding(text: str) -> QuantizationEncoding:
    try:
        encoding = QuantizationEncoding.parse(text)
    except ValueError:
        encoding = None
    if encoding is None or not encoding.is_gguf:
        names = ", ".join(e.name for e in QuantizationEncoding if e.is_gguf)
        raise argparse.ArgumentTypeError(f"unknown GGUF encoding {text!r} (choose from {names})")
    return encoding


def _raise_interrupt(signum: int, frame: Any) -> None:
    # SIGTERM unwinds like Ctrl-C, so the partial output file is removed.
    raise KeyboardInterrupt


def _cmd_quantize(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quantir.runtime.gguf.convert import quantize_model

    in_path, out_path = Path(args.input), Path(args.output)
    if not in_path.exists():
        raise CommandError(f"{in_path}: no such file")
    if in_path.is_dir():
        raise CommandError(f"{in_path}: is a directory; quantize reads a GGUF or .safetensors file")
    if out_path.is_dir():
        raise CommandError(f"{out_path}: is a directory; give the output file's path")
    bar = ProgressBar(err, enabled=args.progress or err.isatty())
    previous = signal.getsignal(signal.SIGTERM)
    in_main_thread = _in_main_thread()
    if in_main_thread:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = quantize_model(in_path, out_path, args.encoding, arch=args.arch, progress=bar)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    for plan in report.fallbacks:
        err.write(f"{PROG}: note: {plan.name}: {plan.note}\n")
    for key in report.dropped_keys:
        err.write(f"{PROG}: note: metadata {key!r} is an empty array and was not copied\n")
    counts = ", ".join(f"{t} {n}" for t, n in report.type_counts().items())
    out.write(
        f"wrote {out_path}: {len(report.plans)} tensors ({counts}), "
        f"{human_bytes(report.in_bytes)} -> {human_bytes(report.out_bytes)}"
        + (f", {len(report.fallbacks)} fell back" if report.fallbacks else "")
        + "\n"
    )
    return 0


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _cmd_encodings(args: argparse.Namespace, out: TextIO) -> int:
    from quantir.runtime.encodings_table import encoding_rows, format_encodings

    rows = encoding_rows()
    out.write((json.dumps(rows, indent=2) if args.json else format_encodings(rows)) + "\n")
    return 0


# --- entry point -------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Inspect and quantize model weight files.")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show the Python traceback (for bug reports)",
    )
    parser.add_argument("--version", action="version", version=version_text(PROG))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    inspect = commands.add_parser(
        "inspect",
        help="list the tensors of a GGUF file or a GPTQ/safetensors checkpoint",
        description="List tensors (name, type, logical shape, bytes) with a header summary.",
    )
    inspect.add_argument(
        "file", metavar="FILE", help="a .gguf file, a .safetensors file or a checkpoint directory"
    )
    inspect.add_argument("--json", action="store_true", help="print JSON instead of a table")
    inspect.add_argument(
        "--metadata", action="store_true", help="also print the GGUF metadata (key = value)"
    )
    inspect.add_argument(
        "--full",
        action="store_true",
        help=f"show every item of metadata arrays (default: the first {_MAX_SHOWN_ARRAY} "
        "and the length), in the listing and in --json",
    )

    encodings = commands.add_parser(
        "encodings",
        help="list the packed weight encodings with their block parameters",
        description="List every encoding quantir reads: weights and bytes per block, bits "
        "per weight (GPTQ: set by its config).",
    )
    encodings.add_argument("--json", action="store_true", help="print JSON instead of a table")

    quantize = commands.add_parser(
        "quantize",
        help="quantize float weights to a GGUF file",
        description="Convert float weights (GGUF with F32/F16/BF16 tensors, or a .safetensors "
        "file) to a quantized GGUF file, choosing types like llama-quantize --pure.",
    )
    quantize.add_argument("input", metavar="IN", help="float weights: .gguf or .safetensors")
    quantize.add_argument("output", metavar="OUT", help="the quantized .gguf file to write")
    quantize.add_argument(
        "--encoding",
        required=True,
        type=_parse_encoding,
        help="the GGUF encoding, e.g. q4_k, q6_k, q8_0",
    )
    quantize.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar even when stderr is not a terminal",
    )
    quantize.add_argument(
        "--arch",
        default=None,
        help="general.architecture for .safetensors input (default: unknown)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    args = parse_arguments(build_parser(), argv)
    if isinstance(args, int):  # --help, or a usage error already reported
        return args

    def body() -> int:
        if args.command == "inspect":
            return _cmd_inspect(args, sys.stdout)
        if args.command == "encodings":
            return _cmd_encodings(args, sys.stdout)
        return _cmd_quantize(args, sys.stdout, sys.stderr)

    return run_command(
        PROG, body, (CommandError, ValueError, OSError), traceback=args.traceback, err=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
