"""Float weights (GGUF or .safetensors) -> a quantized GGUF file.

Which tensors get which type follows llama.cpp's ``llama-quantize --pure``
(one type for every quantizable tensor, no per-layer mixes):

* tensors whose name ends in "weight" with 2 or more dimensions are
  quantized, except the few llama.cpp keeps in float (norms, MoE routers,
  position and token-type embeddings, SSM convolutions);
* everything else (1-D norms and biases, integer tensors) is copied
  unchanged, in its own type;
* a tensor whose rows (K, ggml's ne0) are not a multiple of the encoding's
  block falls back as llama.cpp's ``tensor_type_fallback`` does: Q4_K ->
  Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K and Q3_K -> Q4_0; when that still
  does not fit (or the encoding already has 32-element blocks), F16.

The packed bytes come from ``quantir.runtime.quantize.quantize`` (ggml's
reference quantizers), imported when first needed. Metadata of a GGUF input
is kept, with general.file_type and general.quantization_version set as
llama-quantize sets them. Output is written atomically, one tensor in
memory at a time.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, LlamaFileType

from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.gguf.errors import QuantizeError
from quantir.runtime.gguf.ggml_types import (
    PLAIN_TYPES,
    QUANTIZED_TYPES,
    ggml_type_for_encoding,
    packed_row_bytes,
)
from quantir.runtime.gguf.metadata import MetadataValue
from quantir.runtime.gguf.reader import open_gguf
from quantir.runtime.gguf.safetensors_source import read_safetensors
from quantir.runtime.gguf.writer import ProgressCallback, TensorToWrite, write_gguf

__all__ = [
    "FALLBACK_ENCODING",
    "FILE_TYPE_FOR_ENCODING",
    "QuantizeReport",
    "Quantizer",
    "TensorPlan",
    "load_quantizer",
    "plan_tensor",
    "quantize_model",
]

Quantizer = Callable[[QuantizationEncoding, np.ndarray], np.ndarray]
"""quantize(encoding, float32 [rows, K]) -> uint8 [rows, K // epb * block_size]."""

E = QuantizationEncoding
# llama.cpp's tensor_type_fallback for the encodings quantir has.
FALLBACK_ENCODING: dict[QuantizationEncoding, QuantizationEncoding] = {
    E.Q4_K: E.Q5_0,
    E.Q5_K: E.Q5_1,
    E.Q6_K: E.Q8_0,
    E.Q2_K: E.Q4_0,
    E.Q3_K: E.Q4_0,
}
# general.file_type as `llama-quantize --pure` writes it for the ftype whose
# default type is this encoding (Q3_K/Q4_K/Q5_K: the _S variants).
FILE_TYPE_FOR_ENCODING: dict[QuantizationEncoding, LlamaFileType] = {
    E.Q4_0: LlamaFileType.MOSTLY_Q4_0,
    E.Q4_1: LlamaFileType.MOSTLY_Q4_1,
    E.Q5_0: LlamaFileType.MOSTLY_Q5_0,
    E.Q5_1: LlamaFileType.MOSTLY_Q5_1,
    E.Q8_0: LlamaFileType.MOSTLY_Q8_0,
    E.Q2_K: LlamaFileType.MOSTLY_Q2_K,
    E.Q3_K: LlamaFileType.MOSTLY_Q3_K_S,
    E.Q4_K: LlamaFileType.MOSTLY_Q4_K_S,
    E.Q5_K: LlamaFileType.MOSTLY_Q5_K_S,
    E.Q6_K: LlamaFileType.MOSTLY_Q6_K,
}
# GGML_QNT_VERSION: the block layouts' version, written into quantized files.
QUANTIZATION_VERSION = 2

# Name parts of weights llama.cpp never quantizes (tensor_allows_quantization).
_KEEP_NAME_PARTS = (
    "_norm.weight",
    "ffn_gate_inp.weight",
    "position_embd.weight",
    "token_types.weight",
    "ssm_conv1d",
)
# Keys this converter rewrites rather than copies.
_REWRITTEN_KEYS = ("general.file_type", "general.quantization_version")
_FLOAT_SOURCES = (
    GGMLQuantizationType.F32,
    GGMLQuantizationType.F16,
    GGMLQuantizationType.BF16,
    GGMLQuantizationType.F64,
)


class SourceTensor(Protocol):
    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType

    @property
    def data(self) -> np.ndarray: ...

    def to_float32(self) -> np.ndarray: ...


@dataclass(frozen=True)
class TensorPlan:
    """What happens to one tensor: its source and target ggml types, and why."""

    name: str
    shape: tuple[int, ...]
    source_type: GGMLQuantizationType
    target_type: GGMLQuantizationType
    note: str | None = None  # set when the tensor fell back from the requested encoding

    @property
    def encoding(self) -> QuantizationEncoding | None:
        return QUANTIZED_TYPES.get(self.target_type)

    @property
    def target_name(self) -> str:
        enc = self.encoding
        return enc.name if enc is not None else self.target_type.name.lower()

    @property
    def nbytes(self) -> int:
        rows = int(np.prod(self.shape[:-1], dtype=object)) if len(self.shape) > 1 else 1
        return rows * packed_row_bytes(self.target_type, self.shape[-1])


@dataclass
class QuantizeReport:
    """The outcome of ``quantize_model``."""

    in_path: Path
    out_path: Path
    encoding: QuantizationEncoding
    plans: list[TensorPlan]
    in_bytes: int
    out_bytes: int
    dropped_keys: list[str] = field(default_factory=list)

    @property
    def fallbacks(self) -> list[TensorPlan]:
        return [p for p in self.plans if p.note is not None]

    def type_counts(self) -> dict[str, int]:
        return dict(Counter(p.target_name for p in self.plans).most_common())


def _is_quantizable(name: str, shape: Sequence[int]) -> bool:
    return (
        name.endswith("weight")
        and len(shape) >= 2
        and not any(part in name for part in _KEEP_NAME_PARTS)
    )


def plan_tensor(
    name: str,
    shape: tuple[int, ...],
    source_type: GGMLQuantizationType,
    encoding: QuantizationEncoding,
) -> TensorPlan:
    """Choose the stored type of one tensor (see the module docstring)."""
    if source_type not in PLAIN_TYPES:
        raise QuantizeError(
            f"tensor {name!r} is already quantized ({source_type.name}); quantize expects "
            "float weights (F32, F16, BF16)"
        )
    if source_type not in _FLOAT_SOURCES or not _is_quantizable(name, shape):
        return TensorPlan(name, shape, source_type, source_type)
    k = shape[-1]
    target = encoding
    if k % target.elements_per_block:
        fallback = FALLBACK_ENCODING.get(target)
        if fallback is not None and k % fallback.elements_per_block == 0:
            chosen = ggml_type_for_encoding(fallback)
            what = fallback.name
        else:
            chosen = GGMLQuantizationType.F16
            what = "f16"
        note = (
            f"K={k} is not a multiple of the {encoding.name} block "
            f"({encoding.elements_per_block}); using {what} as llama.cpp does"
        )
        return TensorPlan(name, shape, source_type, chosen, note)
    return TensorPlan(name, shape, source_type, ggml_type_for_encoding(target))


def load_quantizer() -> Quantizer:
    """``quantir.runtime.quantize.quantize``, imported on first use."""
    try:
        from quantir.runtime.quantize import quantize
    except ImportError as e:
        raise QuantizeError(
            f"quantizing needs the module quantir.runtime.quantize, which is not available ({e})"
        ) from None
    return quantize


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # b does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def _quantized_data(src: SourceTensor, plan: TensorPlan, quantizer: Quantizer) -> np.ndarray:
    encoding = plan.encoding
    assert encoding is not None
    k = plan.shape[-1]
    data = src.data
    if data.dtype not in (np.float16, np.float32, np.float64):
        data = src.to_float32()
    # Plain floats go to the quantizer as they are: it converts chunk by chunk,
    # where to_float32() would first copy the whole (memory-mapped) tensor.
    rows = data.reshape(-1, k)
    expected = (rows.shape[0], packed_row_bytes(plan.target_type, k))
    try:
        packed = quantizer(encoding, rows)
    except (ValueError, NotImplementedError) as e:
        raise QuantizeError(f"cannot quantize tensor {plan.name!r} to {encoding.name}: {e}") from e
    if not isinstance(packed, np.ndarray) or packed.dtype != np.uint8 or packed.shape != expected:
        got = (
            f"{packed.dtype} {list(packed.shape)}"
            if isinstance(packed, np.ndarray)
            else type(packed).__name__
        )
        raise QuantizeError(
            f"the quantizer returned {got} for tensor {plan.name!r} ({encoding.name}); "
            f"expected uint8 {list(expected)}"
        )
    return packed.reshape(*plan.shape[:-1], expected[1])


def _f16_data(src: SourceTensor) -> np.ndarray:
    return src.to_float32().astype(np.float16)


def _stored_data(src: SourceTensor) -> np.ndarray:
    return src.data


def _open_source(
    path: Path, arch: str | None
) -> tuple[list[SourceTensor], dict[str, Any], str, list[str]]:
    """Tensors, metadata to keep, architecture, and keys that cannot be copied."""
    if path.suffix == ".safetensors":
        tensors, _ = read_safetensors(path)
        return list(tensors), {}, arch or "unknown", []
    model = open_gguf(path)
    if arch is not None:
        raise QuantizeError(
            "--arch/arch= applies to .safetensors input only; GGUF input "
            "keeps its own general.architecture"
        )
    split_count = model.metadata.get("split.count", 1)
    if isinstance(split_count, int) and split_count > 1:
        raise QuantizeError(f"{path}: split GGUF files ({split_count} parts) are not supported")
    metadata: dict[str, Any] = {}
    dropped: list[str] = []
    for key in model.metadata:
        if key in _REWRITTEN_KEYS:
            continue
        typed = model.metadata.typed(key)
        if typed.type is GGUFValueType.ARRAY and not typed.value:
            dropped.append(key)  # gguf-py's writer cannot write empty arrays
            continue
        metadata[key] = typed
    return list(model.tensors), metadata, model.architecture or "unknown", dropped


def quantize_model(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    encoding: QuantizationEncoding,
    *,
    quantizer: Quantizer | None = None,
    arch: str | None = None,
    progress: ProgressCallback | None = None,
) -> QuantizeReport:
    """Convert float weights in ``in_path`` (GGUF or .safetensors) to a quantized GGUF.

    ``quantizer`` defaults to ``quantir.runtime.quantize.quantize``. ``arch``
    names the architecture of a .safetensors input ("unknown" if None).
    Raises QuantizeError, GGUFFormatError (bad input) or OSError; on any
    failure ``out_path`` is left as it was.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not isinstance(encoding, QuantizationEncoding) or not encoding.is_gguf:
        raise QuantizeError(f"quantize needs a GGUF block encoding, got {encoding!r}")
    if _same_file(in_path, out_path):
        raise QuantizeError(f"the output {out_path} is the input file; choose another path")
    sources, metadata, arch_name, dropped = _open_source(in_path, arch)
    try:
        plans = [plan_tensor(s.name, tuple(s.shape), s.ggml_type, encoding) for s in sources]
    except QuantizeError as e:
        raise QuantizeError(f"{in_path}: {e}") from None
    if quantizer is None and any(p.encoding is not None for p in plans):
        quantizer = load_quantizer()

    specs = []
    for src, plan in zip(sources, plans, strict=True):
        if plan.encoding is not None:
            make = functools.partial(_quantized_data, src, plan, quantizer)
        elif plan.target_type is not plan.source_type:  # the F16 fallback
            make = functools.partial(_f16_data, src)
        else:
            make = functools.partial(_stored_data, src)
        specs.append(TensorToWrite(plan.name, plan.target_type, plan.shape, make))

    metadata["general.quantization_version"] = MetadataValue(
        QUANTIZATION_VERSION, GGUFValueType.UINT32
    )
    metadata["general.file_type"] = MetadataValue(
        int(FILE_TYPE_FOR_ENCODING[encoding]), GGUFValueType.UINT32
    )
    metadata.pop("general.architecture", None)
    write_gguf(out_path, specs, metadata, arch=arch_name, progress=progress)
    return QuantizeReport(
        in_path=in_path,
        out_path=out_path,
        encoding=encoding,
        plans=plans,
        in_bytes=sum(int(s.data.nbytes) for s in sources),
        out_bytes=sum(p.nbytes for p in plans),
        dropped_keys=dropped,
    )
