"""Reading and writing GPTQ quantization configs (quantize_config.json, config.json).

A checkpoint directory describes its quantization in ``quantize_config.json``
(AutoGPTQ / GPTQModel) and/or in the ``quantization_config`` object of the
Hugging Face ``config.json``. Fields we read:

* ``quant_method`` (GPTQModel also writes ``method``): must be "gptq";
  absent means "gptq" (old AutoGPTQ files have no such field).
* ``bits``, ``group_size``: required.
* ``desc_act``: default False (Hugging Face's default); ``sym``: default True
  (AutoGPTQ's and Hugging Face's default). sym does not change how a
  checkpoint is read.
* ``checkpoint_format`` (GPTQModel's newer name: ``format``): "gptq" (v1,
  the default) or "gptq_v2". Other layouts (marlin, bitblas, ...) pack
  differently and are refused, as are ``is_marlin_format: true``, a
  ``pack_dtype`` other than int32 and per-module ``dynamic`` overrides.

Other fields (damp_percent, true_sequential, static_groups, meta, ...) do not
affect the stored layout and are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantir.dialects.encoding import QuantizationConfig, check_checkpoint_format
from quantir.runtime.gptq.layer import GPTQFormatError

__all__ = [
    "CONFIG_FILE",
    "QUANTIZE_CONFIG_FILE",
    "config_to_dict",
    "find_gptq_config",
    "parse_gptq_config",
    "parse_json",
    "read_json",
]

QUANTIZE_CONFIG_FILE = "quantize_config.json"
CONFIG_FILE = "config.json"

# Keys that are compared between quantize_config.json and config.json when
# both files are present and both state the value.
_COMPARED = ("bits", "group_size", "desc_act", "sym", "checkpoint_format")


def parse_json(text: str, source: object) -> Any:
    """Parse JSON text from `source`; bad JSON, including nesting deep enough to
    exhaust Python's stack (a RecursionError in json), is a GPTQFormatError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GPTQFormatError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise GPTQFormatError(f"{source}: JSON nested too deeply to read") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors become GPTQFormatError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GPTQFormatError(f"{path}: cannot read config ({e})") from None
    return parse_json(text, path)


def _explicit_fields(raw: dict, source: str) -> dict[str, Any]:
    """The fields that ``raw`` states, under their canonical names."""
    fields: dict[str, Any] = {}
    method = raw.get("quant_method", raw.get("method"))
    if method is not None:
        fields["quant_method"] = method
    for key in ("bits", "group_size", "desc_act", "sym"):
        if key in raw:
            fields[key] = raw[key]
    fmt = raw.get("checkpoint_format", raw.get("format"))
    if fmt is not None:
        fields["checkpoint_format"] = fmt
    if raw.get("is_marlin_format"):
        raise GPTQFormatError(
            f"{source}: is_marlin_format is true; Marlin-repacked GPTQ weights are not "
            "supported (expected the plain GPTQ layout)"
        )
    pack_dtype = raw.get("pack_dtype")
    if pack_dtype is not None and str(pack_dtype).removeprefix("torch.") != "int32":
        raise GPTQFormatError(
            f"{source}: pack_dtype {pack_dtype!r} is not supported (expected 'int32')"
        )
    if raw.get("dynamic"):
        raise GPTQFormatError(
            f"{source}: per-module 'dynamic' quantization overrides are not supported "
            "(every layer must use the same bits and group_size)"
        )
    return fields


def parse_gptq_config(raw: object, source: str = "config") -> tuple[QuantizationConfig, str]:
    """(QuantizationConfig, checkpoint_format) from a quantization config dict.

    ``source`` names where the dict came from, for error messages.
    Raises :class:`GPTQFormatError` for a missing or bad field.
    """
    if not isinstance(raw, dict):
        raise GPTQFormatError(
            f"{source}: the quantization config must be a JSON object, got {type(raw).__name__}"
        )
    fields = _explicit_fields(raw, source)
    method = fields.get("quant_method", "gptq")
    if not isinstance(method, str) or method.lower() != "gptq":
        raise GPTQFormatError(
            f"{source}: quant_method must be 'gptq', got {method!r} (not a GPTQ checkpoint)"
        )
    for key in ("bits", "group_size"):
        if key not in fields:
            raise GPTQFormatError(f"{source}: the GPTQ config has no {key!r} field")
    fmt = fields.get("checkpoint_format", "gptq")
    try:
        config = QuantizationConfig(
            quant_method="gptq",
            bits=fields["bits"],
            group_size=fields["group_size"],
            desc_act=fields.get("desc_act", False),
            sym=fields.get("sym", True),
        )
        check_checkpoint_format(fmt)
    except ValueError as e:
        raise GPTQFormatError(f"{source}: {e}") from None
    return config, fmt


def config_to_dict(config: QuantizationConfig, checkpoint_format: str) -> dict[str, Any]:
    """The JSON object written for a config (quantize_config.json's content)."""
    check_checkpoint_format(checkpoint_format)
    return {
        "quant_method": config.quant_method,
        "bits": config.bits,
        "group_size": config.group_size,
        "desc_act": config.desc_act,
        "sym": config.sym,
        "checkpoint_format": checkpoint_format,
    }


def _from_config_json(path: Path) -> dict | None:
    data = read_json(path)
    if not isinstance(data, dict):
        raise GPTQFormatError(f"{path}: expected a JSON object")
    qc = data.get("quantization_config")
    if qc is None:
        return None
    if not isinstance(qc, dict):
        raise GPTQFormatError(f"{path}: quantization_config must be a JSON object")
    return qc


def find_gptq_config(
    directory: Path, *, required: bool = True
) -> tuple[QuantizationConfig, str, Path] | None:
    """Find and parse the GPTQ config of a checkpoint directory.

    Returns (config, checkpoint_format, file read). quantize_config.json is
    read first; when config.json also has a quantization_config, the fields
    both state must agree. With ``required=False`` a directory without any
    quantization config gives None instead of an error.
    """
    qc_path, cfg_path = directory / QUANTIZE_CONFIG_FILE, directory / CONFIG_FILE
    primary = read_json(qc_path) if qc_path.is_file() else None
    secondary = _from_config_json(cfg_path) if cfg_path.is_file() else None
    if primary is None and secondary is None:
        if not required:
            return None
        raise GPTQFormatError(
            f"{directory}: no GPTQ config found: expected {QUANTIZE_CONFIG_FILE} or a "
            f"{CONFIG_FILE} with a 'quantization_config' object"
        )
    if primary is not None:
        config, fmt = parse_gptq_config(primary, str(qc_path))
        if isinstance(secondary, dict):
            source = f"{cfg_path} quantization_config"
            parse_gptq_config(secondary, source)  # it must be valid on its own
            a, b = _explicit_fields(primary, str(qc_path)), _explicit_fields(secondary, source)
            for key in _COMPARED:
                if key in a and key in b and a[key] != b[key]:
                    raise GPTQFormatError(
                        f"{directory}: {QUANTIZE_CONFIG_FILE} and {CONFIG_FILE} disagree on "
                        f"{key}: {a[key]!r} vs {b[key]!r}"
                    )
        return config, fmt, qc_path
    config, fmt = parse_gptq_config(secondary, f"{cfg_path} quantization_config")
    return config, fmt, cfg_path
