"""Finding and reading the safetensors files of a checkpoint (numpy only, no torch).

A checkpoint is a directory holding one or more ``*.safetensors`` files
(sharded ones are listed by a ``*.safetensors.index.json`` weight map), or a
single ``.safetensors`` file. Tensors are listed from the file headers first
(cheap: nothing is read) and read on demand with the safetensors package's
numpy API. numpy has no bfloat16, so BF16 tensors are read as float32
holding exactly the same values.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from quantir.runtime.gguf.ggml_types import bfloat16_to_float32
from quantir.runtime.gptq.config import parse_json
from quantir.runtime.gptq.layer import GPTQFormatError

__all__ = [
    "DTYPE_NAMES",
    "LazyTensors",
    "TensorEntry",
    "list_checkpoint_tensors",
    "natural_key",
    "read_tensors",
]

# safetensors dtype code -> (name as quantir/numpy spell it, bytes per element)
DTYPE_NAMES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 1),
    "U8": ("uint8", 1),
    "I8": ("int8", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "F8_E4M3": ("float8_e4m3", 1),
    "U16": ("uint16", 2),
    "I16": ("int16", 2),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "U32": ("uint32", 4),
    "I32": ("int32", 4),
    "F32": ("float32", 4),
    "U64": ("uint64", 8),
    "I64": ("int64", 8),
    "F64": ("float64", 8),
}


@dataclass(frozen=True)
class TensorEntry:
    """Where a stored tensor lives and what its header says about it."""

    name: str
    file: Path
    dtype: str
    """The safetensors dtype code ("F16", "I32", "BF16", ...)."""
    shape: tuple[int, ...]

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, (self.dtype.lower(), 0))[0]

    @property
    def nbytes(self) -> int:
        size = DTYPE_NAMES.get(self.dtype, ("", 0))[1]
        if not size:
            raise GPTQFormatError(
                f"{self.file}: tensor {self.name!r} has unsupported dtype {self.dtype}"
            )
        return int(np.prod(self.shape, dtype=np.int64)) * size


def natural_key(name: str) -> list:
    """Sort key putting "layers.2" before "layers.10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _open(file: Path):
    try:
        return safe_open(str(file), framework="np")
    except (SafetensorError, OSError) as e:
        raise GPTQFormatError(f"{file}: not a readable safetensors file ({e})") from None


def _scan_file(file: Path) -> list[TensorEntry]:
    entries = []
    with _open(file) as f:
        names = f.keys()  # a safe_open handle is not iterable itself
        for name in names:
            piece = f.get_slice(name)
            entries.append(TensorEntry(name, file, piece.get_dtype(), tuple(piece.get_shape())))
    return entries


def _index_files(directory: Path, index: Path) -> tuple[list[Path], dict[str, str]]:
    try:
        text = index.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GPTQFormatError(f"{index}: cannot read the shard index ({e})") from None
    data = parse_json(text, f"{index}: cannot read the shard index")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise GPTQFormatError(
            f"{index}: expected a 'weight_map' object mapping tensor names to shard files"
        )
    files = []
    for shard in sorted(set(weight_map.values()), key=natural_key):
        # Shards are plain file names beside the index; refuse paths that
        # would read outside the checkpoint directory.
        if Path(shard).name != shard or shard in (".", ".."):
            raise GPTQFormatError(f"{index}: shard {shard!r} is not a plain file name")
        if not (directory / shard).is_file():
            raise GPTQFormatError(f"{index}: shard file {shard!r} is missing from {directory}")
        files.append(directory / shard)
    return files, weight_map


def list_checkpoint_tensors(path: str | Path) -> tuple[Path, list[Path], dict[str, TensorEntry]]:
    """(directory, safetensors files, tensor entries by name) of a checkpoint path."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise GPTQFormatError(f"{path}: expected a .safetensors file or a checkpoint directory")
        directory, files, index, weight_map = path.parent, [path], None, {}
    elif path.is_dir():
        directory = path
        indexes = sorted(path.glob("*.safetensors.index.json"))
        if len(indexes) > 1:
            names = ", ".join(i.name for i in indexes)
            raise GPTQFormatError(f"{path}: several shard indexes ({names}); expected one")
        index = indexes[0] if indexes else None
        if index is not None:
            files, weight_map = _index_files(path, index)
        else:
            files, weight_map = sorted(path.glob("*.safetensors")), {}
        if not files:
            raise GPTQFormatError(f"{path}: no *.safetensors files in the checkpoint directory")
    else:
        raise GPTQFormatError(f"{path}: no such file or directory")

    entries: dict[str, TensorEntry] = {}
    for file in files:
        for entry in _scan_file(file):
            if entry.name in entries:
                raise GPTQFormatError(
                    f"tensor {entry.name!r} is stored twice: in {entries[entry.name].file} "
                    f"and in {file}"
                )
            entries[entry.name] = entry
    for name, shard in weight_map.items():
        if name not in entries or entries[name].file.name != shard:
            raise GPTQFormatError(
                f"{index}: the index maps tensor {name!r} to {shard!r}, "
                "but that shard does not hold it"
            )
    return directory, files, entries


def _read_bf16(entry: TensorEntry) -> np.ndarray:
    # safetensors' header: u64 little-endian length, JSON, then the data
    # block that data_offsets index into. safe_open already validated it.
    with open(entry.file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    begin, _ = header[entry.name]["data_offsets"]
    raw = np.fromfile(
        entry.file,
        dtype="<u2",
        count=int(np.prod(entry.shape, dtype=np.int64)),
        offset=8 + length + begin,
    )
    return bfloat16_to_float32(raw).reshape(entry.shape)


def read_tensors(entries: Iterable[TensorEntry]) -> dict[str, np.ndarray]:
    """Read tensors, opening each file once."""
    by_file: dict[Path, list[TensorEntry]] = {}
    for entry in entries:
        by_file.setdefault(entry.file, []).append(entry)
    out: dict[str, np.ndarray] = {}
    for file, group in by_file.items():
        with _open(file) as f:
            for entry in group:
                if entry.dtype == "BF16":
                    out[entry.name] = _read_bf16(entry)
                    continue
                try:
                    out[entry.name] = f.get_tensor(entry.name)
                except (SafetensorError, TypeError, ValueError) as e:
                    raise GPTQFormatError(
                        f"{file}: cannot read tensor {entry.name!r} ({entry.dtype}): {e}"
                    ) from None
    return out


class LazyTensors(Mapping[str, np.ndarray]):
    """Tensors by name, read from their file on first access (then cached)."""

    def __init__(self, entries: Mapping[str, TensorEntry]) -> None:
        self.entries = dict(entries)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            entry = self.entries[name]  # KeyError for an unknown name
            self._cache[name] = read_tensors([entry])[name]
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"LazyTensors({sorted(self.entries, key=natural_key)})"
