"""`quantir-opt`: parse, verify, transform and print quantir IR.

An xDSL opt driver with quantir's dialects, passes and targets registered.
User errors (a missing file, a parse error, a verifier failure, an unknown
pass or target) print the location and message and exit with status 1,
never with a Python traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import (
    DiagnosticException,
    ParseError,
    PassFailedException,
    VerifyException,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from quantir.compiler.diagnostics import (
    UserError,
    format_parse_error,
    parse_located,
    verify_located,
)
from quantir.compiler.registry import quantir_dialects, quantir_passes, quantir_targets


def _vector_arith():
    from quantir.dialects.arith_vector import VectorArith

    return VectorArith


class QuantirOptMain(xDSLOptMain):
    version_format = "quantir-opt (xdsl {xdsl_version})"

    def register_all_dialects(self) -> None:
        # xDSL's plugin discovery already finds quantir through its entry
        # point; register only what is still missing so that running with or
        # without the installed entry point gives the same context. `arith`
        # is swapped for its vector-capable form (see dialects/arith_vector).
        from xdsl.universe import Universe

        dialects = dict(Universe.get_multiverse().all_dialects)
        for name, factory in quantir_dialects().items():
            dialects.setdefault(name, factory)
        dialects["arith"] = _vector_arith
        for name, factory in dialects.items():
            self.ctx.register_dialect(name, factory)

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in quantir_passes().items():
            self.register_pass(name, factory)

    def register_all_arguments(self, arg_parser) -> None:
        arg_parser.prog = "quantir-opt"  # also under `python -m`
        super().register_all_arguments(arg_parser)

    def setup_pipeline(self) -> None:
        # Named pipelines (-p quantir-cpu) expand into their passes here, so
        # that --print-between-passes shows every stage.
        from quantir.compiler.pipeline import expand_pipeline_spec

        self.args.passes = expand_pipeline_spec(self.args.passes)
        super().setup_pipeline()

    def register_all_targets(self) -> None:
        # quantir's own targets take the plain names (`-t llvm`, `-t ptx`).
        for name, factory in quantir_targets().items():
            self.available_targets[name] = factory
        super().register_all_targets()

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


def _report(message: str) -> int:
    sys.stdout.flush()
    print(message.rstrip("\n"), file=sys.stderr)
    return 1


def main(args: Sequence[str] | None = None) -> int:
    try:
        QuantirOptMain(description="quantir modular optimizer driver", args=args).run()
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
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
