"""`quantir-run`: compile one function of a graph file and run it.

    quantir-run GRAPH.mlir --weights model.gguf --input x=x.npy [--time]
    quantir-run GRAPH.mlir --weights ckpt/ --input x=random:4x4096 --output y.npy

Weights come from GGUF files, .npz archives (name -> array) and GPTQ
checkpoints (a directory or a .safetensors file), bound by the names of the
graph's `quant.weight` ops. Every input and weight is checked against the
graph's declarations (dtype, shape, encoding, GPTQ config) before anything
is compiled or run.

User errors end with exit status 1 (2 for bad arguments) and one line on
stderr, "quantir-run: error: ...", never a traceback (``--traceback`` shows
one for bug reports).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from quantir.compiler.diagnostics import UserError
from quantir.compiler.tools.command import parse_arguments, run_command, version_text
from quantir.runtime.compiled_graph import DeviceUnavailableError, compile_on_device
from quantir.runtime.device_names import parse_device
from quantir.runtime.jit import parse_source
from quantir.runtime.tools.run_inputs import (
    assign_inputs,
    function_inputs,
    load_input,
    parse_input_spec,
)
from quantir.runtime.tools.run_output import format_result, format_timings, save_npy_atomic
from quantir.runtime.weight_binding import (
    WeightSource,
    locate_weights,
    open_weight_source,
    weight_declarations,
)

__all__ = ["build_parser", "main"]

PROG = "quantir-run"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line: 'quantir-run: error: ...'."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{PROG} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _device(text: str) -> str:
    try:
        parse_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Compile one function of a quantir graph file and run it on inputs, "
        "with weights from GGUF files, .npz archives or GPTQ checkpoints.",
    )
    parser.add_argument("file", metavar="FILE.mlir", help="the graph file")
    parser.add_argument("--version", action="version", version=version_text(PROG))
    parser.add_argument(
        "--function", metavar="NAME", help="the function to run (default: the only one in the file)"
    )
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        type=parse_input_spec,
        metavar="[NAME=]SOURCE",
        help="an input: PATH.npy (inputs in order) or NAME=PATH.npy; SOURCE may also be "
        "random:SHAPE (e.g. random:1x4096, seeded float32 normal data) or random (the "
        "argument's static shape); repeat for several inputs",
    )
    parser.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="FILE",
        help="a weights file: .gguf, .npz (name -> array), or a GPTQ checkpoint directory or "
        ".safetensors file; repeatable",
    )
    parser.add_argument("--device", default="cpu", type=_device, help="cpu (default) or cuda:N")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="CPU threads (default: QUANTIR_NUM_THREADS, else every core)",
    )
    compile_mode = parser.add_mutually_exclusive_group()
    compile_mode.add_argument(
        "--exact",
        action="store_true",
        help="multiply exactly dequantized weights by float x (the CPU default quantizes x "
        "to int8 blocks: faster, normwise relative error about 5e-3)",
    )
    compile_mode.add_argument(
        "--pipeline",
        metavar="NAME",
        help="compile with another named pipeline (e.g. quantir-cpu-scalar)",
    )
    outputs = parser.add_mutually_exclusive_group()
    outputs.add_argument(
        "--output", metavar="PATH.npy", help="write the (single) result to this .npy file"
    )
    outputs.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write the results to DIR/result0.npy, DIR/result1.npy, ...",
    )
    parser.add_argument(
        "--print-full",
        action="store_true",
        help="print every value of the results (default: numpy's summary)",
    )
    parser.add_argument(
        "--time",
        action="store_true",
        help="report weight loading, compile and run times separately",
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N times (with --time: report the min and median run time)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of random:SHAPE inputs (default 0)"
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show the Python traceback (for bug reports)",
    )
    return parser


# -- the steps ----------------------------------------------------------------


def _read_graph(path: str) -> ModuleOp:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such file")
    if p.is_dir():
        raise UserError(f"{path}: is a directory, not a graph file")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (expected MLIR)") from None
    return parse_source(text, name=path)


def _select_function(module: ModuleOp, name: str | None, path: str) -> func.FuncOp:
    functions = {
        op.sym_name.data: op
        for op in module.ops
        if isinstance(op, func.FuncOp) and op.body.blocks  # not external declarations
    }
    listing = ", ".join(f"@{n}" for n in functions) or "none"
    if name is not None:
        name = name.removeprefix("@")
        if name not in functions:
            raise UserError(f"{path} has no function @{name} (its functions: {listing})")
        return functions[name]
    if len(functions) != 1:
        if not functions:
            raise UserError(f"{path} defines no function to run")
        raise UserError(
            f"{path} defines {len(functions)} functions ({listing}): choose one with --function"
        )
    return next(iter(functions.values()))


def _check_outputs(args: argparse.Namespace, function: func.FuncOp) -> int:
    count = len(function.function_type.outputs.data)
    name = function.sym_name.data
    if count == 0:
        raise UserError(f"@{name} returns nothing: there is no result to show")
    if args.output is not None:
        if count != 1:
            raise UserError(
                f"@{name} returns {count} results: --output takes one; use --output-dir DIR"
            )
        out = Path(args.output)
        if out.is_dir():
            raise UserError(f"--output {args.output}: is a directory; give a file path")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"--output {args.output}: directory {parent} does not exist")
    if args.output_dir is not None and Path(args.output_dir).exists():
        if not Path(args.output_dir).is_dir():
            raise UserError(f"--output-dir {args.output_dir}: exists and is not a directory")
    return count


def _open_sources(paths: list[str]) -> list[WeightSource]:
    """Open every --weights source; if one fails, close those already open."""
    sources: list[WeightSource] = []
    try:
        for path in paths:
            sources.append(open_weight_source(path))
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    module = _read_graph(args.file)
    function = _select_function(module, args.function, args.file)
    name = function.sym_name.data
    _check_outputs(args, function)

    inputs_decl = function_inputs(function)
    specs = assign_inputs(args.input, inputs_decl, name)
    arrays = [load_input(s, fi, args.seed) for s, fi in zip(specs, inputs_decl, strict=True)]

    t0 = time.perf_counter()
    declarations = weight_declarations(function)
    sources = _open_sources(args.weights)
    try:
        located = locate_weights(
            declarations,
            sources,
            hint="pass --weights FILE (a .gguf file, a .npz archive or a GPTQ checkpoint)",
        )
        weights = {n: value for n, (_, value) in located.items()}
        load_s = time.perf_counter() - t0
        used = {id(source) for source, _ in located.values()}
        for s in sources:
            if id(s) not in used:
                err.write(f"{PROG}: note: {s.label} has none of @{name}'s weights\n")
        t0 = time.perf_counter()
        program = compile_on_device(
            ModuleOp([function.clone()]),
            name,
            device=args.device,
            threads=args.threads,
            pipeline=args.pipeline,
            exact=args.exact,
            name=args.file,
        )
        compile_s = time.perf_counter() - t0

        runs = []
        results = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            results = program(arrays, weights)
            runs.append(time.perf_counter() - t0)
    finally:
        for s in sources:
            s.close()

    if args.output is not None:
        save_npy_atomic(Path(args.output), results[0])
        out.write(f"wrote result0 ({_describe(results[0])}) to {args.output}\n")
    elif args.output_dir is not None:
        directory = Path(args.output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for i, r in enumerate(results):
            path = directory / f"result{i}.npy"
            save_npy_atomic(path, r)
            out.write(f"wrote result{i} ({_describe(r)}) to {path}\n")
    else:
        for i, r in enumerate(results):
            out.write(format_result(f"result{i}", r, full=args.print_full) + "\n")
    if args.time:
        out.write(format_timings(compile_s, runs, load_s if sources else None) + "\n")
    return 0


def _describe(array) -> str:
    return f"{array.dtype.name} [{', '.join(map(str, array.shape))}]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    args = parse_arguments(build_parser(), argv)
    if isinstance(args, int):  # --help, or a usage error already reported
        return args
    return run_command(
        PROG,
        lambda: _run(args, sys.stdout, sys.stderr),
        (UserError, ValueError, OSError, DeviceUnavailableError),
        traceback=args.traceback,
        err=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
