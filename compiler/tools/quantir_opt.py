"""`quantir-opt`: parse, verify, transform and print quantir IR.

An xDSL opt driver with quantir's dialects, passes and targets registered.
User errors (a missing file, a parse error, a verifier failure, an unknown
pass or target) print the location and message and exit with status 1,
never with a Python traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import tempfile
from collections.abc import Sequence
from io import BytesIO
from typing import IO

from xdsl.dialects.builtin import FileLineColLoc, ModuleOp
from xdsl.ir import Operation
from xdsl.utils.exceptions import (
    DiagnosticException,
    ParseError,
    PassFailedException,
    VerifyException,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from quantir.compiler.diagnostics import (
    UserError,
    error_message,
    failing_ops,
    format_parse_error,
    location_of,
    parse_located,
    verify_located,
)
from quantir.compiler.registry import (
    pass_summaries,
    plugin_targets,
    quantir_dialects,
    quantir_passes,
    quantir_targets,
)
from quantir.compiler.tools.command import run_command, silence_stdout, version_text
from quantir.compiler.tools.expected_diagnostics import (
    AnnotationError,
    Diagnostic,
    check_diagnostics,
    parse_expectations,
)


def _vector_arith():
    from quantir.dialects.arith_vector import VectorArith

    return VectorArith


def _memref_with_prefetch():
    from quantir.dialects.upstream_ops import MemRefWithPrefetch

    return MemRefWithPrefetch


def _gpu_with_subgroup_reduce():
    from quantir.dialects.upstream_ops import GPUWithSubgroupReduce

    return GPUWithSubgroupReduce


class _ListPassesAction(argparse.Action):
    """`--list-passes`: quantir's passes and named pipelines, one line each, then exit."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        passes, pipelines = pass_summaries()
        width = max(len(name) for name, *_ in passes + pipelines) + 2
        lines = ["quantir passes:"]
        lines += [f"  {name:<{width}}{summary}" for name, summary in passes]
        lines += ["", "quantir pipelines (-p NAME runs these passes in order):"]
        for name, summary, spec in pipelines:
            lines += [f"  {name:<{width}}{summary}", f"  {'':<{width}}{spec}"]
        lines += ["", "xDSL's own passes are listed by --help."]
        print("\n".join(lines))
        parser.exit()


class QuantirOptMain(xDSLOptMain):
    # `{xdsl_version}` is filled in by xDSL's --version action.
    version_format = version_text("quantir-opt").replace("{", "{{").replace("}", "}}")

    def register_all_dialects(self) -> None:
        # xDSL's plugin discovery already finds quantir through its entry
        # point; register only what is still missing so that running with or
        # without the installed entry point gives the same context. `arith`
        # is swapped for its vector-capable form (see dialects/arith_vector),
        # `memref` and `gpu` for forms with the upstream ops xDSL lacks
        # (dialects/upstream_ops).
        from xdsl.universe import Universe

        dialects = dict(Universe.get_multiverse().all_dialects)
        for name, factory in quantir_dialects().items():
            dialects.setdefault(name, factory)
        dialects["arith"] = _vector_arith
        dialects["memref"] = _memref_with_prefetch
        dialects["gpu"] = _gpu_with_subgroup_reduce
        for name, factory in dialects.items():
            self.ctx.register_dialect(name, factory)

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in quantir_passes().items():
            self.register_pass(name, factory)

    def register_all_arguments(self, arg_parser) -> None:
        arg_parser.prog = "quantir-opt"  # also under `python -m`
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--list-passes",
            action=_ListPassesAction,
            help="list quantir's passes and named pipelines with one-line summaries, and exit",
        )

    def setup_pipeline(self) -> None:
        # Named pipelines (-p quantir-cpu) expand into their passes here, so
        # that --print-between-passes shows every stage.
        from quantir.compiler.pipeline import expand_pipeline_spec

        self.args.passes = expand_pipeline_spec(self.args.passes)
        super().setup_pipeline()

    def register_all_targets(self) -> None:
        # quantir's own targets take the plain names (`-t llvm`, `-t ptx`), and
        # the plugin's (`-t quantir-llvm`) work here too, as in xdsl-opt.
        for name, factory in {**quantir_targets(), **plugin_targets()}.items():
            self.available_targets[name] = factory
        super().register_all_targets()

    pending_output: IO[str] | None = None

    def prepare_output(self) -> IO[str]:
        if self.args.output_file is None:
            return sys.stdout
        self.pending_output = _PendingOutput(self.args.output_file)
        return self.pending_output

    def parse_chunk(
        self, chunk: IO[bytes], file_extension: str, start_offset: int = 0
    ) -> ModuleOp | None:
        if (self.args.frontend or file_extension) != "mlir":
            return super().parse_chunk(chunk, file_extension, start_offset)
        # Our parser stamps each op with its file:line:col so that verifier
        # errors can point at the user's source.
        text = chunk.read().decode()
        module = parse_located(self.ctx, text, self.get_input_name(), start_offset)
        if not self.args.verify_diagnostics and not self.args.disable_verify:
            verify_located(module)
        return module

    def apply_passes(self, prog: ModuleOp) -> None:
        try:
            super().apply_passes(prog)
        except VerifyException:
            if self.args.verify_diagnostics:
                raise
            # A pass produced invalid IR: report where, as for input errors.
            verify_located(prog)
            raise

    def run(self) -> None:
        if not self.args.verify_diagnostics:
            super().run()
            return
        failures = self._run_verifying_diagnostics()
        if failures:
            raise DiagnosticsMismatchError("\n".join(failures))

    def _run_verifying_diagnostics(self) -> list[str]:
        """Run each chunk, matching what it reports against its `expected-*` annotations."""
        chunks, file_extension = self.prepare_input()
        output = self.prepare_output()
        name = self.get_input_name()
        failures: list[str] = []
        try:
            for i, (chunk, offset) in enumerate(chunks):
                with chunk:
                    text = chunk.read().decode()
                try:
                    expectations = parse_expectations(text, first_line=offset + 1)
                except AnnotationError as e:
                    failures.append(f"{name}:{e}")
                    continue
                if i > 0:
                    output.write("// -----\n")
                diagnostics, module = self._chunk_diagnostics(text, file_extension, offset)
                if module is not None:
                    output.write(self.output_resulting_program(module))
                output.flush()
                failures += check_diagnostics(expectations, diagnostics, name)
        finally:
            if output is not sys.stdout:
                output.close()
        return failures

    def _chunk_diagnostics(
        self, text: str, file_extension: str, offset: int
    ) -> tuple[list[Diagnostic], ModuleOp | None]:
        """The diagnostics of one chunk, and its module when it ran without any."""
        try:
            module = self.parse_chunk(BytesIO(text.encode()), file_extension, offset)
        except ParseError as e:
            span = dataclasses.replace(e.span, line_offset=offset)
            where = span.get_location()
            return [Diagnostic("error", where.line, e.msg, str(where))], None
        if module is None:
            return [], None
        failures = failing_ops(module)
        if failures:
            return [_located(op, error_message(err)) for op, err in failures], None
        try:
            self.apply_passes(module)
        except (DiagnosticException, PassFailedException, VerifyException) as e:
            located = failing_ops(module)
            if located:
                return [_located(op, error_message(err)) for op, err in located], None
            return [Diagnostic("error", None, error_message(e))], None
        return [], module


class DiagnosticsMismatchError(Exception):
    """--verify-diagnostics found diagnostics and annotations that do not match."""


def _located(op: Operation, message: str) -> Diagnostic:
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return Diagnostic("error", loc.line.data, message, location_of(op))
    return Diagnostic("error", None, message)


def _report(message: str) -> int:
    sys.stdout.flush()
    print(message.rstrip("\n"), file=sys.stderr)
    return 1


class _PendingOutput(io.StringIO):
    """What `-o FILE` receives; the file is written only after the whole run
    succeeded, so an error or Ctrl-C never leaves a partial or truncated FILE."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.text: str | None = None

    def close(self) -> None:  # xDSL closes the stream when the run ends
        if not self.closed:
            self.text = self.getvalue()
        super().close()

    def commit(self) -> None:
        text = self.text if self.text is not None else self.getvalue()
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".quantir-opt.", suffix=".partial", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def main(args: Sequence[str] | None = None) -> int:
    # Ctrl-C (130), a closed pipe (0), out of memory and too-deep input (1)
    # end as for quantir-run and quantir; bugs keep their traceback.
    return run_command("quantir-opt", lambda: _main(args), (), traceback=False, err=sys.stderr)


def _main(args: Sequence[str] | None) -> int:
    try:
        tool = QuantirOptMain(description="quantir modular optimizer driver", args=args)
        tool.run()
        if isinstance(tool.pending_output, _PendingOutput):
            tool.pending_output.commit()
    except DiagnosticsMismatchError as e:
        return _report(str(e))  # one `FILE:LINE: error: ...` per mismatch
    except UserError as e:
        return _report(str(e))  # already `FILE:LINE:COL: error: ...`
    except ParseError as e:
        return _report(format_parse_error(e))
    except (DiagnosticException, PassFailedException) as e:
        return _report(f"quantir-opt: error: {e}")
    except FileNotFoundError as e:
        return _report(f"quantir-opt: error: no such file: {e.filename}")
    except (IsADirectoryError, PermissionError) as e:
        return _report(f"quantir-opt: error: cannot read {e.filename}: {e.strerror}")
    except ValueError as e:
        # Unknown passes and malformed pass options reach us as ValueError.
        return _report(f"quantir-opt: error: {e}")
    except BrokenPipeError:
        silence_stdout()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
