"""`quantir-run --input`: which array feeds which function argument.

    --input PATH.npy            the next argument, in order
    --input NAME=PATH.npy       the argument named %NAME in the graph file
    --input NAME=random:2x4096  seeded float32 standard-normal data of that shape
    --input NAME=random         the same, with the argument's (static) shape

Integer inputs (the token ids of a `quant.gather`) come from .npy files of
the declared dtype; random data is float32 only. Everything is loaded and
checked against the function's argument types before anything is compiled
or run (and gather ids against their table's rows before any kernel runs).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType

from quantir.compiler.diagnostics import UserError
from quantir.runtime.buffers import dtype_problem
from quantir.runtime.host_plan import PlanError, numpy_dtypes

__all__ = ["FunctionInput", "InputSpec", "assign_inputs", "function_inputs", "load_input"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")


@dataclass(frozen=True)
class InputSpec:
    """One parsed --input value."""

    text: str
    name: str | None
    path: str | None = None
    random_shape: tuple[int, ...] | None = None
    random: bool = False

    @property
    def origin(self) -> str:
        """Where the data comes from, for messages."""
        if self.random:
            shape = "x".join(map(str, self.random_shape)) if self.random_shape else ""
            return f"random:{shape}" if shape else "random"
        return str(self.path)


def parse_shape(text: str) -> tuple[int, ...]:
    dims = text.split("x")
    if not text or not all(d.isdigit() and int(d) > 0 for d in dims):
        raise argparse.ArgumentTypeError(
            f"bad shape {text!r}: expected positive sizes separated by 'x', e.g. 1x4096"
        )
    return tuple(int(d) for d in dims)


def parse_input_spec(text: str) -> InputSpec:
    """argparse type of --input: `PATH`, `NAME=PATH`, `NAME=random[:SHAPE]`.

    A `NAME=` prefix is recognized when NAME is an identifier; to pass a path
    that itself looks like `name=...`, write it as `./name=...`.
    """
    name = None
    rest = text
    head, eq, tail = text.partition("=")
    if eq and _NAME.fullmatch(head):
        name, rest = head, tail
    if not rest:
        raise argparse.ArgumentTypeError(f"--input {text!r}: nothing after '='")
    if rest == "random":
        return InputSpec(text, name, random=True)
    if rest.startswith("random:"):
        return InputSpec(text, name, random_shape=parse_shape(rest[len("random:") :]), random=True)
    return InputSpec(text, name, path=rest)


@dataclass(frozen=True)
class FunctionInput:
    """One argument of the function to run."""

    index: int
    name: str | None
    type: TensorType
    dtypes: tuple[str, ...]
    shape: tuple[int, ...]  # -1 = dynamic

    @property
    def label(self) -> str:
        return f'input "{self.name}"' if self.name else f"input {self.index}"

    def describe(self) -> str:
        dims = ", ".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.dtypes[0]} [{dims}]"


def function_inputs(function: func.FuncOp) -> list[FunctionInput]:
    inputs = []
    for i, arg in enumerate(function.body.block.args):
        t = arg.type
        if not isinstance(t, TensorType):
            raise UserError(f"@{function.sym_name.data} argument {i} is {t}, not a tensor")
        try:
            dtypes = numpy_dtypes(t.element_type)
        except PlanError as e:
            raise UserError(f"@{function.sym_name.data} argument {i}: {e}") from None
        shape = tuple(-1 if d < 0 else d for d in t.get_shape())
        inputs.append(FunctionInput(i, arg.name_hint, t, dtypes, shape))
    return inputs


def assign_inputs(
    specs: list[InputSpec], inputs: list[FunctionInput], function: str
) -> list[InputSpec]:
    """The --input given for each function argument, in argument order."""
    names = {fi.name: fi for fi in inputs if fi.name}
    chosen: dict[int, InputSpec] = {}
    positional = [s for s in specs if s.name is None]
    named = [s for s in specs if s.name is not None]
    if len(positional) > len(inputs):
        raise UserError(
            f"@{function} takes {len(inputs)} input(s), but {len(positional)} were given "
            "without a name"
        )
    for fi, spec in zip(inputs, positional, strict=False):
        chosen[fi.index] = spec
    for spec in named:
        fi = names.get(spec.name)
        if fi is None:
            listing = ", ".join(f.name or f"#{f.index}" for f in inputs) or "none"
            raise UserError(
                f'--input {spec.text}: @{function} has no input named "{spec.name}" '
                f"(its inputs: {listing})"
            )
        if fi.index in chosen:
            raise UserError(
                f"{fi.label} of @{function} is given twice ({chosen[fi.index].text} and "
                f"{spec.text})"
            )
        chosen[fi.index] = spec
    for fi in inputs:
        if fi.index not in chosen:
            how = f"--input {fi.name}=PATH.npy" if fi.name else "--input PATH.npy in order"
            raise UserError(
                f"missing {fi.label} of @{function} ({fi.type}): pass {how} "
                f"(or {fi.name or 'NAME'}=random:SHAPE for random data)"
            )
    return [chosen[fi.index] for fi in inputs]


def _read_npy(spec: InputSpec, fi: FunctionInput) -> np.ndarray:
    path = Path(str(spec.path))
    if not path.exists():
        raise UserError(f"{fi.label}: {path}: no such file")
    if path.is_dir():
        raise UserError(f"{fi.label}: {path}: is a directory, not a .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{fi.label}: {path}: not a readable .npy file ({e})") from None
    if not isinstance(array, np.ndarray):
        close = getattr(array, "close", None)
        if callable(close):
            close()
        raise UserError(f"{fi.label}: {path}: is a .npz archive; --input takes one .npy array")
    return array


def _random(spec: InputSpec, fi: FunctionInput, seed: int) -> np.ndarray:
    if fi.dtypes[0] != "float32":
        raise UserError(
            f"{fi.label}: random data is float32, but the graph declares {fi.describe()}"
        )
    shape = spec.random_shape
    if shape is None:
        if any(d < 0 for d in fi.shape):
            raise UserError(
                f"{fi.label} has dynamic dimensions ({fi.describe()}): give the shape, "
                f"e.g. --input {fi.name or 'NAME'}=random:"
                + "x".join("1" if d < 0 else str(d) for d in fi.shape)
            )
        shape = fi.shape
    # One stream per argument, so adding an input does not change the others.
    rng = np.random.default_rng([seed, fi.index])
    return rng.standard_normal(shape, dtype=np.float32)


def load_input(spec: InputSpec, fi: FunctionInput, seed: int = 0) -> np.ndarray:
    """The array for one argument, checked against its declared type."""
    array = _random(spec, fi, seed) if spec.random else _read_npy(spec, fi)
    described = f"{array.dtype.name} [{', '.join(map(str, array.shape))}]"
    byte_order = dtype_problem(array.dtype, fi.dtypes)
    if byte_order is not None and array.dtype.name in fi.dtypes:
        raise UserError(f"{fi.label} from {spec.origin}: {byte_order}")
    ok = (
        byte_order is None
        and array.ndim == len(fi.shape)
        and all(w < 0 or w == g for w, g in zip(fi.shape, array.shape, strict=True))
    )
    if not ok:
        hint = ""
        wanted = np.dtype(fi.dtypes[0]).kind
        # Floats convert to anything; integers only to other integers (gather
        # indices saved as int64 for an i32 graph, say).
        if array.dtype.name not in fi.dtypes and (
            array.dtype.kind == "f" or (array.dtype.kind in "iu" and wanted in "iu")
        ):
            hint = f" (convert it with .astype(np.{fi.dtypes[0]}))"
        raise UserError(
            f"{fi.label} from {spec.origin} is {described} but the graph declares "
            f"{fi.describe()}{hint}"
        )
    return np.ascontiguousarray(array)
