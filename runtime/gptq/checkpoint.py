"""GPTQ checkpoints on disk: loading and describing them (writing: writer.py).

Layers are found by tensor name: every prefix P with a ``P.qweight``,
``P.qzeros`` or ``P.g_idx`` tensor is a GPTQ linear layer whose tensors are
``P.qweight``, ``P.qzeros``, ``P.scales``, ``P.g_idx`` and optionally
``P.bias``. Everything else (embeddings, norms, an unquantized lm_head) is a
plain tensor. One config (quantize_config.json or config.json's
quantization_config) covers every layer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantir.dialects.encoding import QuantizationConfig
from quantir.runtime.gptq.config import find_gptq_config
from quantir.runtime.gptq.layer import (
    GPTQ_TENSOR_NAMES,
    GPTQFormatError,
    GPTQLinear,
    expected_tensor_specs,
)
from quantir.runtime.gptq.store import (
    LazyTensors,
    TensorEntry,
    list_checkpoint_tensors,
    natural_key,
    read_tensors,
)

__all__ = [
    "GPTQCheckpoint",
    "describe_checkpoint",
    "load_gptq_checkpoint",
]

_LAYER_SUFFIXES = (*GPTQ_TENSOR_NAMES, "bias")
# Names that only a GPTQ layer has ("scales" and "bias" alone are not enough).
_MARKERS = ("qweight", "qzeros", "g_idx")
_SAFETENSORS_CODE = {np.dtype(np.int32): "I32", np.dtype(np.float16): "F16"}


@dataclass(eq=False)
class GPTQCheckpoint:
    """A loaded GPTQ checkpoint.

    ``layers`` maps layer prefixes to validated :class:`GPTQLinear` layers
    (natural name order); ``tensors`` maps the names of the other tensors to
    their arrays, read from disk on first access (BF16 ones as float32).
    """

    path: Path
    directory: Path
    files: tuple[Path, ...]
    config_file: Path
    config: QuantizationConfig
    checkpoint_format: str
    layers: dict[str, GPTQLinear]
    tensors: LazyTensors

    def layer(self, name: str) -> GPTQLinear:
        try:
            return self.layers[name]
        except KeyError:
            raise KeyError(
                f"{self.path}: no GPTQ layer {name!r} (the checkpoint has {len(self.layers)} "
                "GPTQ layers; see .layers)"
            ) from None

    def describe(self) -> list[dict[str, Any]]:
        """The rows of :func:`describe_checkpoint` for this checkpoint."""
        return describe_checkpoint(self.path)


def _group(
    entries: Mapping[str, TensorEntry],
) -> tuple[dict[str, dict[str, TensorEntry]], dict[str, TensorEntry]]:
    """Split tensor entries into GPTQ layers (by prefix) and plain tensors."""
    prefixes = set()
    for name in entries:
        prefix, dot, suffix = name.rpartition(".")
        if dot and prefix and suffix in _MARKERS:
            prefixes.add(prefix)
    layers: dict[str, dict[str, TensorEntry]] = {p: {} for p in sorted(prefixes, key=natural_key)}
    others: dict[str, TensorEntry] = {}
    for name in sorted(entries, key=natural_key):
        prefix, _, suffix = name.rpartition(".")
        if prefix in layers and suffix in _LAYER_SUFFIXES:
            layers[prefix][suffix] = entries[name]
        else:
            others[name] = entries[name]
    return layers, others


def _check_layer_headers(
    prefix: str, parts: Mapping[str, TensorEntry], config: QuantizationConfig
) -> tuple[int, int]:
    """Check a layer's tensors from their headers; returns (K, N).

    g_idx may be absent when desc_act is False (older checkpoints omit it;
    it is then k // group_size).
    """
    required = [t for t in GPTQ_TENSOR_NAMES if t != "g_idx" or config.desc_act]
    missing = [t for t in required if t not in parts]
    if missing:
        where = parts[next(iter(parts))].file
        raise GPTQFormatError(
            f"{where}: GPTQ layer {prefix!r} has no tensor(s) "
            f"{', '.join(f'{prefix}.{t}' for t in missing)} "
            f"(a layer stores {', '.join(GPTQ_TENSOR_NAMES)} and optionally bias)"
        )
    qweight = parts["qweight"]
    if len(qweight.shape) != 2:
        raise GPTQFormatError(
            f"{qweight.file}: {prefix}.qweight must be 2-D [K*bits/32, N], "
            f"got shape {list(qweight.shape)}"
        )
    rows, n = qweight.shape
    k = config.in_features_of(rows)
    try:
        if k is None:
            raise ValueError(f"{rows} rows is not K*{config.bits}/32 for a whole K")
        specs = expected_tensor_specs(k, n, config)
    except ValueError as e:
        raise GPTQFormatError(
            f"{qweight.file}: GPTQ layer {prefix!r} (qweight {list(qweight.shape)}, "
            f"bits={config.bits}, group_size={config.group_size}): {e}"
        ) from None
    for tname in _LAYER_SUFFIXES:  # canonical order: the first mismatch is reported
        if tname not in parts:
            continue
        entry = parts[tname]
        shape, dtype = specs[tname]
        code = _SAFETENSORS_CODE[dtype]
        if entry.dtype != code or entry.shape != shape:
            raise GPTQFormatError(
                f"{entry.file}: GPTQ layer {prefix!r}: {tname} must be {dtype.name} "
                f"{list(shape)} (K={k}, N={n}, bits={config.bits}, "
                f"group_size={config.group_size}), got {entry.dtype_name} {list(entry.shape)}"
            )
    return k, n


def load_gptq_checkpoint(path: str | os.PathLike) -> GPTQCheckpoint:
    """Load a GPTQ checkpoint: a directory (one or several, possibly sharded,
    ``*.safetensors`` files) or one ``.safetensors`` file whose directory holds
    the config.

    GPTQ layer tensors are read and validated now; other tensors are read on
    first access. Every problem (missing/bad config, missing tensors, wrong
    dtypes or shapes, bad g_idx, unreadable files, a missing path) raises
    :class:`GPTQFormatError` naming the file and layer.
    """
    path = Path(path)
    directory, files, entries = list_checkpoint_tensors(path)
    found = find_gptq_config(directory)
    assert found is not None  # required=True raises instead
    config, fmt, config_file = found
    groups, others = _group(entries)
    if not groups:
        raise GPTQFormatError(
            f"{path}: no GPTQ layers found (no tensor is named '<layer>.qweight')"
        )
    layers: dict[str, GPTQLinear] = {}
    for prefix, parts in groups.items():
        k, _ = _check_layer_headers(prefix, parts, config)
        arrays = read_tensors(parts.values())
        g_idx_entry = parts.get("g_idx")
        if g_idx_entry is None:
            g_idx = (np.arange(k) // config.effective_group_size(k)).astype(np.int32)
        else:
            g_idx = arrays[g_idx_entry.name]
        bias_entry = parts.get("bias")
        try:
            layers[prefix] = GPTQLinear(
                name=prefix,
                qweight=arrays[parts["qweight"].name],
                qzeros=arrays[parts["qzeros"].name],
                scales=arrays[parts["scales"].name],
                g_idx=g_idx,
                bias=arrays[bias_entry.name] if bias_entry is not None else None,
                config=config,
                checkpoint_format=fmt,
            )
        except GPTQFormatError as e:
            raise GPTQFormatError(f"{parts['qweight'].file}: {e}") from None
    return GPTQCheckpoint(
        path=path,
        directory=directory,
        files=tuple(files),
        config_file=config_file,
        config=config,
        checkpoint_format=fmt,
        layers=layers,
        tensors=LazyTensors(others),
    )


# -- describing -------------------------------------------------------------


def _encoding_label(config: QuantizationConfig, fmt: str) -> str:
    label = f"gptq{config.bits} g{config.group_size}"
    if config.desc_act:
        label += " act-order"
    if fmt == "gptq_v2":
        label += " v2"
    return label


def describe_checkpoint(path: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per weight of a safetensors checkpoint, for ``quantir inspect``.

    Reads only file headers and the config. Each row has:

    * ``name``: the layer prefix for a GPTQ layer, else the tensor name;
    * ``encoding``: "gptq<bits> g<group_size>" (plus " act-order" with
      desc_act and " v2" for checkpoint_format gptq_v2) for a GPTQ layer, else
      the stored dtype ("float16", "bfloat16", "int64", ...);
    * ``shape``: the logical [N, K] shape for a GPTQ layer, else the stored shape;
    * ``dtype``: the storage dtype ("int32" for a GPTQ layer's qweight);
    * ``nbytes``: stored bytes (all of a layer's tensors, bias included);
    * ``files``: the file names holding it.

    Rows come in natural name order. A checkpoint without GPTQ layers needs
    no config. Raises :class:`GPTQFormatError` for unreadable files, a missing
    or bad config, or GPTQ tensors whose headers contradict the config.
    """
    directory, _, entries = list_checkpoint_tensors(Path(path))
    groups, others = _group(entries)
    # Plain tensors need no config: only GPTQ layers make us read it.
    found = find_gptq_config(directory) if groups else None
    rows: list[tuple[list, dict[str, Any]]] = []
    for prefix, parts in groups.items():
        assert found is not None
        config, fmt, _ = found
        k, n = _check_layer_headers(prefix, parts, config)
        rows.append(
            (
                natural_key(prefix),
                {
                    "name": prefix,
                    "encoding": _encoding_label(config, fmt),
                    "shape": [n, k],
                    "dtype": "int32",
                    "nbytes": sum(e.nbytes for e in parts.values()),
                    "files": sorted({e.file.name for e in parts.values()}),
                },
            )
        )
    for name, entry in others.items():
        rows.append(
            (
                natural_key(name),
                {
                    "name": name,
                    "encoding": entry.dtype_name,
                    "shape": list(entry.shape),
                    "dtype": entry.dtype_name,
                    "nbytes": entry.nbytes,
                    "files": [entry.file.name],
                },
            )
        )
    rows.sort(key=lambda r: r[0])
    return [row for _, row in rows]
