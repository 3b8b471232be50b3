"""Binding a graph's declared weights to data: GGUF files, arrays, GPTQ checkpoints.

A graph declares each weight with a `quant.weight` op (name, encoding,
logical shape, GPTQ config). `weight_declarations` reads those declarations
from a function; a `WeightSource` looks a declaration up in one place and
checks it (encoding, logical shape, dtype, GPTQ config and zero-point
format) before anything runs; `bind_weights` binds every declaration and
returns the `weights=` mapping a Program takes.

Errors are ValueErrors that name the weight, the source and both sides:
``weight "blk.0.ffn_down.weight" is Q6_K [4096, 14336] in model.gguf but the
graph declares Q4_K [4096, 14336]``.

Float weights: a weight declared float32 accepts float16 and bfloat16 data
from weight FILES (GGUF, safetensors, a GPTQ bias), widened exactly to
float32, because the file's storage type is its publisher's choice; arrays
given directly (dicts, .npz) must already have the declared dtype.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType as IRTensorType

from quantir.compiler.diagnostics import location_of
from quantir.dialects.encoding import GPTQ_TENSOR_NAMES, QuantizationConfig, QuantizationEncoding
from quantir.dialects.errors import QuantirError
from quantir.dialects.quant import WeightOp
from quantir.runtime.buffers import dtype_problem
from quantir.runtime.gptq.layer import g_idx_problem
from quantir.runtime.host_plan import numpy_dtypes
from quantir.runtime.program import gather_weight_parts

__all__ = [
    "ArrayWeights",
    "GGUFWeights",
    "GPTQWeights",
    "MissingWeightError",
    "PartSpec",
    "WeightDeclaration",
    "WeightMismatchError",
    "WeightSource",
    "bind_weights",
    "locate_weights",
    "describe_gptq",
    "open_weight_source",
    "weight_declarations",
]


class WeightMismatchError(ValueError, QuantirError):
    """A weight's data does not match the graph's declaration (or is ambiguous)."""


class MissingWeightError(ValueError, QuantirError):
    """A weight the graph declares was found in none of the sources."""


@dataclass(frozen=True)
class PartSpec:
    """One stored tensor of a declared weight: accepted numpy dtypes and its shape."""

    part: str  # "" for GGUF and float weights; "qweight", ... for GPTQ
    dtypes: tuple[str, ...]
    shape: tuple[int, ...]


def describe_gptq(config: QuantizationConfig, checkpoint_format: str | None) -> str:
    return (
        f"GPTQ bits={config.bits} group_size={config.group_size} "
        f"desc_act={str(config.desc_act).lower()} sym={str(config.sym).lower()} "
        f"format={checkpoint_format or 'gptq'}"
    )


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class WeightDeclaration:
    """What a graph says about one weight."""

    name: str
    encoding: QuantizationEncoding | None
    shape: tuple[int, ...]
    """The logical shape ([N, K] for encoded weights)."""
    parts: tuple[PartSpec, ...]
    config: QuantizationConfig | None = None
    checkpoint_format: str | None = None
    location: str | None = field(default=None, compare=False)
    """`FILE:LINE:COL` of the declaring `quant.weight` op, when the graph was parsed."""

    @property
    def is_float(self) -> bool:
        return self.encoding is None

    def describe(self) -> str:
        """E.g. "Q4_K [288, 256]", "float32 [256]", "GPTQ bits=4 ... [N, K]"."""
        shape = _shape_text(self.shape)
        if self.encoding is None:
            return f"{self.parts[0].dtypes[0]} {shape}"
        if self.encoding is QuantizationEncoding.GPTQ:
            assert self.config is not None
            return f"{describe_gptq(self.config, self.checkpoint_format)} {shape}"
        return f"{self.encoding.value} {shape}"

    def stored_description(self) -> str:
        """How the data is stored, e.g. "uint8 [288, 144]"."""
        return ", ".join(
            f"{(p.part + ' ') if p.part else ''}{p.dtypes[0]} {_shape_text(p.shape)}"
            for p in self.parts
        )


def _declaration_of(op: WeightOp) -> WeightDeclaration:
    parts = []
    encoding = op.encoding.encoding if op.encoding is not None else None
    if encoding is QuantizationEncoding.GPTQ:
        names: tuple[str, ...] = GPTQ_TENSOR_NAMES
    else:
        names = ("",)
    for part, result in zip(names, op.results_, strict=True):
        t = result.type
        assert isinstance(t, IRTensorType)
        parts.append(PartSpec(part, numpy_dtypes(t.element_type), tuple(t.get_shape())))
    config = fmt = None
    if op.config is not None:
        config, fmt = op.config.config, op.config.checkpoint_format.data
    return WeightDeclaration(
        op.weight_name.data,
        encoding,
        tuple(op.logical_shape),
        tuple(parts),
        config,
        fmt,
        location_of(op),
    )


def weight_declarations(function: func.FuncOp) -> list[WeightDeclaration]:
    """The weights `function` declares, in order of first declaration.

    The same name declared twice must be declared the same way (both ops
    read the same data).
    """
    found: dict[str, WeightDeclaration] = {}
    for op in function.walk():
        if not isinstance(op, WeightOp):
            continue
        decl = _declaration_of(op)
        known = found.get(decl.name)
        if known is None:
            found[decl.name] = decl
        elif known != decl:
            raise WeightMismatchError(
                f'the graph declares weight "{decl.name}" twice, as {known.describe()} and '
                f"as {decl.describe()}"
            )
    return list(found.values())


# -- sources ----------------------------------------------------------------


def _mismatch(
    decl: WeightDeclaration, found: str, label: str, stored: bool = False
) -> WeightMismatchError:
    """`stored`: also say how the declared weight is stored (when `found` is raw arrays)."""
    extra = ""
    if stored and decl.encoding is not None and decl.encoding.is_gguf:
        extra = f" (stored as {decl.stored_description()})"
    return WeightMismatchError(
        f'weight "{decl.name}" is {found} in {label} but the graph declares '
        f"{decl.describe()}{extra}"
    )


def _array_text(array: np.ndarray) -> str:
    return f"{array.dtype.name} {_shape_text(array.shape)}"


def _refuse_byte_swapped(
    name: str, part: str, array: np.ndarray, spec: PartSpec, label: str
) -> None:
    """A weight of the right dtype name in the wrong byte order is an error, not a cast."""
    problem = dtype_problem(array.dtype, (array.dtype.name,))
    if problem is not None and array.dtype.name in spec.dtypes:
        what = f'weight "{name}"' + (f" {part}" if part else "")
        raise WeightMismatchError(f"{what} in {label}: {problem}")


def _widen_float(array: np.ndarray, ggml_bf16: bool = False) -> np.ndarray:
    if ggml_bf16:  # raw bfloat16 bits as uint16
        from quantir.runtime.gguf.ggml_types import bfloat16_to_float32

        return bfloat16_to_float32(array)
    return array.astype(np.float32)


def _check_plain(
    decl: WeightDeclaration, array: np.ndarray, label: str, found: str, widen: bool
) -> np.ndarray:
    """An unencoded weight's array, checked (float16 widened to float32 if `widen`)."""
    spec = decl.parts[0]
    if tuple(array.shape) != spec.shape:
        raise _mismatch(decl, found, label)
    _refuse_byte_swapped(decl.name, "", array, spec, label)
    if array.dtype.name in spec.dtypes:
        return array
    if widen and spec.dtypes[0] == "float32" and array.dtype.name == "float16":
        return _widen_float(array)
    raise _mismatch(decl, found, label)


class WeightSource:
    """Somewhere weights can come from. `lookup` returns None when the name is absent."""

    label: str

    def lookup(self, decl: WeightDeclaration) -> object | None:  # pragma: no cover
        raise NotImplementedError

    def names(self) -> list[str]:
        """The weight names this source has (for "did you mean" suggestions)."""
        return []

    def close(self) -> None:
        """Release the source's files (data already bound stays valid)."""


class GGUFWeights(WeightSource):
    """Tensors of an open GGUF file (memory-mapped, never copied unless widened)."""

    def __init__(self, model: Any, label: str | None = None) -> None:
        self.model = model
        self.label = label if label is not None else str(model.path)

    def names(self) -> list[str]:
        return [t.name for t in self.model.tensors]

    def _describe(self, tensor: Any) -> str:
        from quantir.runtime.gguf.ggml_types import PLAIN_TYPES

        shape = _shape_text(tensor.shape)
        if not tensor.is_supported:
            return f"{tensor.type_name} {shape} (a type quantir does not support)"
        if tensor.ggml_type in PLAIN_TYPES:
            return f"{PLAIN_TYPES[tensor.ggml_type][0].name} {shape}"
        return f"{tensor.type_name} {shape}"

    def lookup(self, decl: WeightDeclaration) -> object | None:
        from gguf import GGMLQuantizationType

        if decl.name not in self.model:
            return None
        tensor = self.model.tensor(decl.name)
        found = self._describe(tensor)
        if not tensor.is_supported or tuple(tensor.shape) != decl.shape:
            raise _mismatch(decl, found, self.label)
        if decl.encoding is not None:
            if tensor.encoding is not decl.encoding:
                raise _mismatch(decl, found, self.label)
            data = tensor.data
            if tuple(data.shape) != decl.parts[0].shape:  # a malformed file's sizes
                raise _mismatch(decl, f"{found} stored as {_array_text(data)}", self.label)
            return data
        if tensor.is_quantized:
            raise _mismatch(decl, found, self.label)
        bf16 = tensor.ggml_type is GGMLQuantizationType.BF16
        if bf16:
            if decl.parts[0].dtypes[0] != "float32":
                raise _mismatch(decl, found, self.label)
            return _widen_float(tensor.data, ggml_bf16=True)
        return _check_plain(decl, tensor.data, self.label, found, widen=True)

    def close(self) -> None:
        self.model.close()


class ArrayWeights(WeightSource):
    """Arrays by name: a dict, or a .npz archive (`name` -> array).

    A GPTQ weight is either one entry (a GPTQLinear, a (qweight, qzeros,
    scales, g_idx) sequence or a mapping of those names) or four entries
    `<name>.qweight`, `<name>.qzeros`, `<name>.scales`, `<name>.g_idx`.
    """

    def __init__(self, arrays: Mapping[str, Any], label: str) -> None:
        self.arrays = arrays
        self.label = label

    def names(self) -> list[str]:
        # GPTQ parts stored as "<name>.qweight" etc. suggest "<name>".
        names = [str(k) for k in self.arrays]
        suffixes = tuple(f".{p}" for p in GPTQ_TENSOR_NAMES)
        return names + [n.rsplit(".", 1)[0] for n in names if n.endswith(suffixes)]

    def lookup(self, decl: WeightDeclaration) -> object | None:
        if decl.encoding is QuantizationEncoding.GPTQ:
            return self._lookup_gptq(decl)
        if decl.name not in self.arrays:
            return None
        array = self.arrays[decl.name]
        if not isinstance(array, np.ndarray):
            raise WeightMismatchError(
                f'weight "{decl.name}" in {self.label} must be a numpy array, '
                f"got {type(array).__name__}"
            )
        found = _array_text(array)
        if decl.encoding is None:
            return _check_plain(decl, array, self.label, found, widen=False)
        spec = decl.parts[0]
        if array.dtype.name not in spec.dtypes or tuple(array.shape) != spec.shape:
            raise _mismatch(decl, found, self.label, stored=True)
        _refuse_byte_swapped(decl.name, "", array, spec, self.label)
        return array

    def _lookup_gptq(self, decl: WeightDeclaration) -> object | None:
        names = [p.part for p in decl.parts]
        if decl.name in self.arrays:
            value = self.arrays[decl.name]
            config = getattr(value, "config", None)
            if isinstance(config, QuantizationConfig):
                fmt = getattr(value, "checkpoint_format", "gptq")
                shape = tuple(getattr(value, "logical_shape", ()))
                if (config, fmt, shape) != (decl.config, decl.checkpoint_format, decl.shape):
                    found = f"{describe_gptq(config, fmt)} {_shape_text(shape)}"
                    raise _mismatch(decl, found, self.label)
            try:
                parts = gather_weight_parts(decl.name, value, tuple(names))
            except ValueError as e:
                raise WeightMismatchError(f"{e} (in {self.label})") from None
        else:
            keys = {p: f"{decl.name}.{p}" for p in names}
            present = [p for p, k in keys.items() if k in self.arrays]
            if not present:
                return None
            missing = [keys[p] for p in names if p not in present]
            if missing:
                raise WeightMismatchError(
                    f'GPTQ weight "{decl.name}": {self.label} has '
                    f"{', '.join(keys[p] for p in present)} but not {', '.join(missing)}"
                )
            parts = {p: self.arrays[k] for p, k in keys.items()}
        for spec in decl.parts:
            array = parts[spec.part]
            if not isinstance(array, np.ndarray):
                raise WeightMismatchError(
                    f'GPTQ weight "{decl.name}" {spec.part} in {self.label} must be a numpy '
                    f"array, got {type(array).__name__}"
                )
            if array.dtype.name not in spec.dtypes or tuple(array.shape) != spec.shape:
                raise WeightMismatchError(
                    f'GPTQ weight "{decl.name}" {spec.part} is {_array_text(array)} in '
                    f"{self.label} but the graph's declaration ({decl.describe()}) needs "
                    f"{spec.dtypes[0]} {_shape_text(spec.shape)}"
                )
            _refuse_byte_swapped(decl.name, spec.part, array, spec, self.label)
        g_idx = parts["g_idx"]  # shape (K,) checked above
        problem = g_idx_problem(g_idx, decl.config, g_idx.shape[0])
        if problem is not None:
            raise WeightMismatchError(f'GPTQ weight "{decl.name}" in {self.label}: {problem}')
        return {p: parts[p] for p in names}

    def close(self) -> None:
        close = getattr(self.arrays, "close", None)
        if callable(close):
            close()


class GPTQWeights(WeightSource):
    """A GPTQ checkpoint: a GPTQ weight "prefix" binds to layer "prefix".

    "<prefix>.bias" binds to a layer's bias, and other names to the
    checkpoint's plain tensors.
    """

    def __init__(self, checkpoint: Any, label: str | None = None) -> None:
        self.checkpoint = checkpoint
        self.label = label if label is not None else str(checkpoint.path)

    def names(self) -> list[str]:
        return [*self.checkpoint.layers, *self.checkpoint.tensors]

    def lookup(self, decl: WeightDeclaration) -> object | None:
        ckpt = self.checkpoint
        layer = ckpt.layers.get(decl.name)
        if layer is not None:
            found = f"{describe_gptq(layer.config, layer.checkpoint_format)} " + _shape_text(
                layer.logical_shape
            )
            if (
                decl.encoding is not QuantizationEncoding.GPTQ
                or layer.config != decl.config
                or layer.checkpoint_format != decl.checkpoint_format
                or tuple(layer.logical_shape) != decl.shape
            ):
                raise _mismatch(decl, found, self.label)
            return layer
        prefix, dot, last = decl.name.rpartition(".")
        if dot and last == "bias" and prefix in ckpt.layers:
            bias = ckpt.layers[prefix].bias
            if bias is not None:
                if decl.encoding is not None:
                    raise _mismatch(decl, f"the bias of GPTQ layer {prefix!r}", self.label)
                return _check_plain(decl, bias, self.label, _array_text(bias), widen=True)
        if decl.name in ckpt.tensors:
            array = ckpt.tensors[decl.name]  # BF16 is read as float32
            found = _array_text(array)
            if decl.encoding is not None:
                raise _mismatch(decl, found, self.label)
            return _check_plain(decl, array, self.label, found, widen=True)
        return None


def open_weight_source(path: str | os.PathLike) -> WeightSource:
    """Open a weights file by kind: a GGUF file, a .npz archive, or a GPTQ
    checkpoint (a directory or a .safetensors file).

    Raises ValueError (FileNotFoundError for a missing path) naming the file.
    """
    label = os.fspath(path)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{label}: no such file or directory")
    if p.is_dir() or p.suffix == ".safetensors":
        from quantir.runtime.gptq import load_gptq_checkpoint

        return GPTQWeights(load_gptq_checkpoint(p), label)
    with open(p, "rb") as f:
        magic = f.read(4)
    if p.suffix == ".npz" or magic == b"PK\x03\x04":
        import zipfile

        try:
            archive = np.load(p, allow_pickle=False)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise ValueError(f"{label}: not a readable .npz archive ({e})") from None
        if not isinstance(archive, Mapping):
            raise ValueError(f"{label}: a .npz archive of named arrays is expected")
        return ArrayWeights(archive, label)
    if p.suffix == ".gguf" or magic == b"GGUF":
        from quantir.runtime.gguf import open_gguf

        return GGUFWeights(open_gguf(p), label)
    raise ValueError(
        f"{label}: not a weights file quantir reads (expected a .gguf file, a .npz archive, "
        "or a GPTQ checkpoint: a directory or a .safetensors file)"
    )


def as_weight_sources(weights: object, label: str = "weights") -> list[WeightSource]:
    """Turn a `weights=` argument into sources.

    Accepts None, a WeightSource, an open GGUF model, a GPTQ checkpoint, a
    mapping of name -> array (or GPTQ layer), or a list of those.
    """
    if weights is None:
        return []
    if isinstance(weights, list | tuple):
        return [s for w in weights for s in as_weight_sources(w, label)]
    if isinstance(weights, WeightSource):
        return [weights]
    from quantir.runtime.gguf import GGUFModel
    from quantir.runtime.gptq import GPTQCheckpoint

    if isinstance(weights, GGUFModel):
        return [GGUFWeights(weights)]
    if isinstance(weights, GPTQCheckpoint):
        return [GPTQWeights(weights)]
    if isinstance(weights, Mapping):
        return [ArrayWeights(weights, label)]
    raise TypeError(
        "weights must be a mapping of name -> array, an open GGUF model (open_gguf), a GPTQ "
        f"checkpoint (load_gptq_checkpoint), or a list of those; got {type(weights).__name__}"
    )


def bind_weights(
    declarations: Sequence[WeightDeclaration],
    sources: Sequence[WeightSource],
    *,
    hint: str = "",
) -> dict[str, object]:
    """Look every declared weight up and check it; return name -> bound value.

    Every declaration must be found in exactly one source. `hint` ends the
    error for missing weights (e.g. "pass --weights FILE").
    """
    return {
        name: value for name, (_, value) in locate_weights(declarations, sources, hint=hint).items()
    }


def locate_weights(
    declarations: Sequence[WeightDeclaration],
    sources: Sequence[WeightSource],
    *,
    hint: str = "",
) -> dict[str, tuple[WeightSource, object]]:
    """Like `bind_weights`, but also say which source each weight came from."""
    bound: dict[str, tuple[WeightSource, object]] = {}
    missing: list[WeightDeclaration] = []
    for decl in declarations:
        hits = []
        for source in sources:
            try:
                value = source.lookup(decl)
            except WeightMismatchError as e:
                raise WeightMismatchError(_located(decl, str(e))) from None
            if value is not None:
                hits.append((source, value))
        if not hits:
            missing.append(decl)
            continue
        if len(hits) > 1:
            labels = " and ".join(s.label for s, _ in hits)
            raise WeightMismatchError(
                _located(
                    decl,
                    f'weight "{decl.name}" is in both {labels}: pass only one source that has it',
                )
            )
        bound[decl.name] = hits[0]
    if missing:
        first = missing[0]
        where = (
            f"not in {', '.join(s.label for s in sources)}"
            if sources
            else "not given (no weights were passed)"
        )
        more = ""
        if len(missing) > 1:
            others = ", ".join(f'"{d.name}"' for d in missing[1:6])
            more = f" (also missing: {others}{', ...' if len(missing) > 6 else ''})"
        tail = f"; {hint}" if hint else ""
        raise MissingWeightError(
            _located(
                first,
                f'weight "{first.name}" ({first.describe()}) is {where}'
                f"{_did_you_mean(first.name, sources)}{more}{tail}",
            )
        )
    return bound


def _located(decl: WeightDeclaration, message: str) -> str:
    """`FILE:LINE:COL: error: message` at the declaring op, as verifier errors are."""
    return f"{decl.location}: error: {message}" if decl.location else message


def _did_you_mean(name: str, sources: Sequence[WeightSource]) -> str:
    """' (did you mean "..."?)' with the closest names the sources have, or ""."""
    known = list(dict.fromkeys(n for s in sources for n in s.names()))
    close = [f'"{c}"' for c in difflib.get_close_matches(name, known, n=3, cutoff=0.6)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" (did you mean {listed}?)"
