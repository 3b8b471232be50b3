"""Writing GPTQ checkpoints: safetensors files (optionally sharded) plus the config."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from quantir.dialects.encoding import QuantizationConfig, check_checkpoint_format
from quantir.runtime.gptq.config import (
    CONFIG_FILE,
    QUANTIZE_CONFIG_FILE,
    config_to_dict,
    read_json,
)
from quantir.runtime.gptq.layer import GPTQ_TENSOR_NAMES, GPTQFormatError, GPTQLinear

__all__ = ["save_gptq_checkpoint"]

_LAYER_SUFFIXES = (*GPTQ_TENSOR_NAMES, "bias")


def _units(
    layers: list[GPTQLinear], extra: Mapping[str, np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """Tensors grouped so that a layer never spans two shards."""
    units = []
    for layer in layers:
        unit = {f"{layer.name}.{t}": a for t, a in zip(GPTQ_TENSOR_NAMES, layer.tensors())}
        if layer.bias is not None:
            unit[f"{layer.name}.bias"] = layer.bias
        units.append(unit)
    units.extend({name: arr} for name, arr in extra.items())
    return units


def _shards(units: list[dict[str, np.ndarray]], max_bytes: int | None):
    if max_bytes is None:
        return [{k: v for unit in units for k, v in unit.items()}]
    shards: list[dict[str, np.ndarray]] = []
    size = 0
    for unit in units:
        unit_bytes = sum(a.nbytes for a in unit.values())
        if not shards or (size + unit_bytes > max_bytes and size > 0):
            shards.append({})
            size = 0
        shards[-1].update(unit)
        size += unit_bytes
    return shards


def _check_save_inputs(
    layers: Iterable[GPTQLinear] | Mapping[str, GPTQLinear],
    config: QuantizationConfig,
    checkpoint_format: str,
    extra_tensors: Mapping[str, np.ndarray] | None,
) -> tuple[list[GPTQLinear], dict[str, np.ndarray]]:
    if not isinstance(config, QuantizationConfig):
        raise GPTQFormatError(
            f"save_gptq_checkpoint: config must be a QuantizationConfig, got {config!r}"
        )
    try:
        check_checkpoint_format(checkpoint_format)
    except ValueError as e:
        raise GPTQFormatError(f"save_gptq_checkpoint: {e}") from None
    layer_list = list(layers.values() if isinstance(layers, Mapping) else layers)
    if not layer_list:
        raise GPTQFormatError("save_gptq_checkpoint: no layers to save")
    names: set[str] = set()
    for layer in layer_list:
        if not isinstance(layer, GPTQLinear):
            raise GPTQFormatError(
                f"save_gptq_checkpoint: layers must be GPTQLinear, got {type(layer).__name__}"
            )
        layer.validate()
        if layer.config != config or layer.checkpoint_format != checkpoint_format:
            raise GPTQFormatError(
                f"save_gptq_checkpoint: layer {layer.name!r} has config {layer.config} / "
                f"{layer.checkpoint_format!r}, the checkpoint {config} / {checkpoint_format!r} "
                "(one config covers every layer)"
            )
        if layer.name in names:
            raise GPTQFormatError(f"save_gptq_checkpoint: two layers are named {layer.name!r}")
        names.add(layer.name)
    extra = dict(extra_tensors or {})
    for name, arr in extra.items():
        if not isinstance(arr, np.ndarray):
            raise GPTQFormatError(
                f"save_gptq_checkpoint: extra tensor {name!r} must be a numpy array, "
                f"got {type(arr).__name__}"
            )
        prefix, _, suffix = name.rpartition(".")
        if prefix in names and suffix in _LAYER_SUFFIXES:
            raise GPTQFormatError(
                f"save_gptq_checkpoint: extra tensor {name!r} collides with layer {prefix!r}"
            )
        if prefix and suffix in ("qweight", "qzeros", "g_idx"):
            raise GPTQFormatError(
                f"save_gptq_checkpoint: extra tensor {name!r} would be read back as part "
                f"of a GPTQ layer {prefix!r}; pass GPTQ layers as GPTQLinear"
            )
    return layer_list, extra


def save_gptq_checkpoint(
    directory: str | os.PathLike,
    layers: Iterable[GPTQLinear] | Mapping[str, GPTQLinear],
    config: QuantizationConfig,
    checkpoint_format: str = "gptq",
    extra_tensors: Mapping[str, np.ndarray] | None = None,
    *,
    config_file: str = QUANTIZE_CONFIG_FILE,
    max_shard_bytes: int | None = None,
) -> list[Path]:
    """Write layers (and plain ``extra_tensors``) as a GPTQ safetensors checkpoint.

    Writes ``model.safetensors``, or with ``max_shard_bytes`` the shards
    ``model-0000i-of-0000n.safetensors`` (a layer never spans two shards) plus
    ``model.safetensors.index.json``; then the config: ``quantize_config.json``,
    or with ``config_file="config.json"`` the ``quantization_config`` object of
    config.json (other keys of an existing config.json are kept). Each file is
    written under a temporary name and renamed into place, config last.
    Refuses a directory already holding other safetensors files (they would
    be read as part of the checkpoint). Returns the files written.
    """
    layer_list, extra = _check_save_inputs(layers, config, checkpoint_format, extra_tensors)
    if config_file not in (QUANTIZE_CONFIG_FILE, CONFIG_FILE):
        raise GPTQFormatError(
            f"save_gptq_checkpoint: config_file must be {QUANTIZE_CONFIG_FILE!r} or "
            f"{CONFIG_FILE!r}, got {config_file!r}"
        )
    if max_shard_bytes is not None and (type(max_shard_bytes) is not int or max_shard_bytes <= 0):
        raise GPTQFormatError(
            f"save_gptq_checkpoint: max_shard_bytes must be a positive int, got {max_shard_bytes!r}"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    shards = _shards(_units(layer_list, extra), max_shard_bytes)
    if max_shard_bytes is None:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    targets = set(names) | ({"model.safetensors.index.json"} if max_shard_bytes else set())
    stale = [
        p.name
        for p in [*out.glob("*.safetensors"), *out.glob("*.safetensors.index.json")]
        if p.name not in targets
    ]
    if stale:
        raise GPTQFormatError(
            f"save_gptq_checkpoint: {out} already holds other checkpoint files "
            f"({', '.join(sorted(stale))}); save into an empty directory"
        )

    pending: list[tuple[Path, Path]] = []  # (temporary, final)

    def temporary(name: str) -> Path:
        tmp = out / f".{name}.tmp-{os.getpid()}"
        pending.append((tmp, out / name))
        return tmp

    try:
        weight_map: dict[str, str] = {}
        for name, shard in zip(names, shards):
            tensors = {k: np.ascontiguousarray(v) for k, v in shard.items()}
            save_file(tensors, temporary(name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, name))
        if max_shard_bytes is not None:
            total = sum(a.nbytes for shard in shards for a in shard.values())
            index = {"metadata": {"total_size": int(total)}, "weight_map": weight_map}
            temporary("model.safetensors.index.json").write_text(
                json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
        quant = config_to_dict(config, checkpoint_format)
        if config_file == CONFIG_FILE:
            existing = out / CONFIG_FILE
            data = read_json(existing) if existing.is_file() else {}
            if not isinstance(data, dict):
                raise GPTQFormatError(f"{existing}: expected a JSON object")
            data["quantization_config"] = quant
            quant = data
        temporary(config_file).write_text(json.dumps(quant, indent=2) + "\n", encoding="utf-8")
        for tmp, final in pending:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in pending]
