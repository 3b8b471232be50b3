"""The lazy GGUF reader against gguf-py's GGUFReader, and on files built to hurt it.

open_gguf parses the header, metadata layout and tensor table from the
mapping and decodes values only when asked; gguf-py's reader (which decodes
everything) is the oracle for what each field and tensor holds.
"""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from test_gguf_io import random_blocks

from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.cli import main as quantir_main
from quantir.runtime.gguf import (
    GGUFFormatError,
    MetadataValue,
    TensorToWrite,
    open_gguf,
    write_gguf,
)
from quantir.runtime.gguf.metadata import MetadataArray

DATA = Path(__file__).resolve().parents[1] / "data" / "gguf"
V = GGUFValueType
E = QuantizationEncoding


def reference_value(field) -> object:
    """A field's value from gguf-py's parts: strings as raw bytes, numbers as Python values."""
    vtype = V(field.types[0])
    if vtype is V.STRING:
        return bytes(field.parts[-1])
    if vtype is not V.ARRAY:
        return field.parts[-1][0].item()
    if len(field.types) > 1 and V(field.types[1]) is V.STRING:
        return [bytes(field.parts[i]) for i in field.data]
    return [field.parts[i][0].item() for i in field.data]


def ours_as_reference(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [ours_as_reference(v) for v in value]
    return value


def assert_agrees_with_gguf_py(path: Path) -> None:
    ref = GGUFReader(path)
    model = open_gguf(path)
    fields = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert model.version == ref.fields["GGUF.version"].parts[-1][0]
    assert model.alignment == ref.alignment and model.data_offset == ref.data_offset
    assert list(model.metadata) == list(fields)
    for key, field in fields.items():
        vtype = V(field.types[0])
        assert model.metadata.value_type(key) is vtype, key
        value = model.metadata[key]
        assert ours_as_reference(value) == reference_value(field), key
        if vtype is V.ARRAY:
            array = model.metadata.array(key)
            assert len(array) == len(field.data), key
            if len(field.types) > 1:
                assert array.element_type is V(field.types[1]), key
            assert array[: min(3, len(array))] == value[:3], key
            assert array[-1] == value[-1] and array[::2] == value[::2], key
    assert [t.name for t in model.tensors] == [t.name for t in ref.tensors]
    for ours, theirs in zip(model.tensors, ref.tensors, strict=True):
        assert ours.ggml_type is GGMLQuantizationType(theirs.tensor_type), ours.name
        assert ours.ne == tuple(int(n) for n in theirs.shape), ours.name
        assert ours.n_elements == theirs.n_elements and ours.nbytes == theirs.n_bytes
        assert ours.data_offset == theirs.data_offset, ours.name
        assert np.array_equal(ours.raw_bytes, theirs.data.reshape(-1).view(np.uint8))
        if ours.is_supported and ours.ggml_type is not GGMLQuantizationType.BF16:
            assert ours.data.dtype == theirs.data.dtype and ours.data.shape == theirs.data.shape
            assert np.array_equal(ours.data, theirs.data, equal_nan=True), ours.name
            assert not ours.data.flags.writeable and not ours.data.flags.owndata


@pytest.mark.parametrize("path", sorted(DATA.glob("*.gguf")), ids=lambda p: p.name)
def test_agrees_with_gguf_py_on_every_test_file(path):
    assert_agrees_with_gguf_py(path)


def test_agrees_with_gguf_py_on_every_metadata_type_and_tensor_kind(tmp_path):
    path = tmp_path / "all.gguf"
    metadata = {
        "t.u8": MetadataValue(200, V.UINT8),
        "t.i8": MetadataValue(-100, V.INT8),
        "t.u16": MetadataValue(60000, V.UINT16),
        "t.i16": MetadataValue(-30000, V.INT16),
        "t.u32": MetadataValue(4_000_000_000, V.UINT32),
        "t.i32": MetadataValue(-2_000_000_000, V.INT32),
        "t.u64": MetadataValue(2**63 + 5, V.UINT64),
        "t.i64": MetadataValue(-(2**62), V.INT64),
        "t.f32": MetadataValue(0.1, V.FLOAT32),
        "t.f64": MetadataValue(0.1, V.FLOAT64),
        "t.bool": True,
        "t.str": "héllo",
        "t.bad_utf8": "a\udcff",  # an undecodable byte, kept as a surrogate
        "t.empty_str": "",
        "t.bools": [True, False, True],
        "t.u16s": MetadataValue([1, 2, 65535], V.ARRAY, V.UINT16),
        "t.f64s": MetadataValue([0.5, -1.25], V.ARRAY, V.FLOAT64),
        "t.ints": list(range(100)),
        "t.strs": ["", "x", "yz" * 300, "\udcfe"] + [f"tok{i}" for i in range(200)],
    }
    tensors = [
        TensorToWrite("q4k", E.Q4_K, (3, 256), random_blocks(E.Q4_K, 3, 256)),
        TensorToWrite("q8", E.Q8_0, (2, 64), random_blocks(E.Q8_0, 2, 64)),
        TensorToWrite(
            "f32", np.float32, (2, 3, 5), np.arange(30.0, dtype=np.float32).reshape(2, 3, 5)
        ),
        TensorToWrite("f16", np.float16, (7,), np.arange(7, dtype=np.float16)),
        TensorToWrite("i32", np.int32, (4,), np.arange(4, dtype=np.int32)),
    ]
    write_gguf(path, tensors, metadata, arch="llama")
    assert_agrees_with_gguf_py(path)
    model = open_gguf(path)
    assert model.metadata["t.bad_utf8"] == "a\udcff"
    assert model.metadata["t.strs"][150] == "tok146"
    assert model.metadata.array("t.strs")[150] == "tok146"  # through the offset table
    assert model.metadata.array("t.ints").as_numpy().dtype == np.int32


# --- files built to be expensive ------------------------------------------------


def gguf_bytes(kvs: list[bytes], tensor_count: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, len(kvs)) + b"".join(kvs)


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def array_kv(key: str, element_type: V, length: int, payload: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<IIQ", V.ARRAY, element_type, length) + payload


def timed_open(path: Path) -> tuple[object, float, int]:
    """(model, seconds, peak bytes of Python allocations) of open_gguf(path).

    Timed without tracemalloc, which slows every allocation; measured with it."""
    start = time.perf_counter()
    model = open_gguf(path)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    try:
        open_gguf(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return model, seconds, peak


def test_a_2_to_the_24_element_array_in_a_16_mb_file_opens_lazily(tmp_path):
    """gguf-py takes about a minute and 6 GB here (one numpy object per element)."""
    n = 1 << 24
    payload = (np.arange(n, dtype=np.uint32) % 251).astype(np.uint8).tobytes()
    path = tmp_path / "huge.gguf"
    arch = gguf_string("general.architecture") + struct.pack("<I", V.STRING) + gguf_string("x")
    path.write_bytes(gguf_bytes([arch, array_kv("x.big", V.UINT8, n, payload)]))
    model, seconds, peak = timed_open(path)
    assert seconds < 0.25, seconds
    assert peak < 1 << 20, peak  # the 16 MB stay in the mapping
    array = model.metadata.array("x.big")
    assert isinstance(array, MetadataArray) and len(array) == n
    assert (
        array.element_type is V.UINT8
        and array[:4] == [0, 1, 2, 3]
        and array[n - 1] == (n - 1) % 251
    )
    assert int(array.as_numpy()[-251:].astype(np.int64).sum()) == sum(range(251))


def test_half_a_million_string_array_opens_in_well_under_a_second(tmp_path):
    n = 1 << 19
    strings = b"".join(gguf_string(chr(ord("a") + i % 26)) for i in range(n))
    path = tmp_path / "vocab.gguf"
    path.write_bytes(gguf_bytes([array_kv("tokenizer.ggml.tokens", V.STRING, n, strings)]))
    model, seconds, peak = timed_open(path)
    assert seconds < 0.5, seconds
    assert peak < 1 << 20, peak
    tokens = model.metadata.array("tokenizer.ggml.tokens")
    assert (
        len(tokens) == n
        and tokens[:3] == ["a", "b", "c"]
        and tokens[n - 1] == chr(ord("a") + (n - 1) % 26)
    )


@pytest.mark.parametrize(
    ("element_type", "length", "fragment"),
    [
        (V.UINT8, (1 << 24) + 1, "limit"),
        (V.UINT8, 1 << 20, "truncated"),
        (V.INT64, 1 << 20, "truncated"),
        (V.STRING, 1 << 20, "truncated"),
        (V.STRING, 3, "element 2"),  # the third string's length runs past the end
    ],
)
def test_absurd_array_lengths_are_clear_errors(tmp_path, element_type, length, fragment):
    payload = gguf_string("a") + gguf_string("b") + struct.pack("<Q", 1 << 40) + b"x" * 64
    path = tmp_path / "absurd.gguf"
    path.write_bytes(gguf_bytes([array_kv("x.arr", element_type, length, payload)]))
    start = time.perf_counter()
    with pytest.raises(GGUFFormatError, match=fragment) as info:
        open_gguf(path)
    assert time.perf_counter() - start < 0.5
    assert str(path) in str(info.value) and "x.arr" in str(info.value)


def test_every_truncation_of_a_vocabulary_file_is_a_clear_error(tmp_path):
    """Cut the file at every byte: every cut is a GGUFFormatError, none another error."""
    strings = b"".join(gguf_string(f"t{i}") for i in range(20))
    data = gguf_bytes([array_kv("tokenizer.ggml.tokens", V.STRING, 20, strings)])
    target = tmp_path / "cut.gguf"
    target.write_bytes(data)
    assert len(open_gguf(target).metadata["tokenizer.ggml.tokens"]) == 20
    for cut in range(24, len(data)):
        target.write_bytes(data[:cut])
        with pytest.raises(GGUFFormatError, match="truncated|cannot fit"):
            open_gguf(target)


# --- quantir inspect --metadata -------------------------------------------------


def test_inspect_shows_a_prefix_of_long_arrays_unless_full(tmp_path, capsys):
    n = 1 << 16
    strings = b"".join(gguf_string(f"w{i}") for i in range(n))
    path = tmp_path / "vocab.gguf"
    path.write_bytes(
        gguf_bytes(
            [
                array_kv("tokenizer.ggml.tokens", V.STRING, n, strings),
                array_kv("x.small", V.INT32, 2, struct.pack("<ii", -1, 7)),
            ]
        )
    )
    assert quantir_main(["inspect", "--metadata", str(path)]) == 0
    out = capsys.readouterr().out
    shown = ", ".join(f'"w{i}"' for i in range(16))
    assert f"tokenizer.ggml.tokens = [{shown}, ... ({n} items)]\n" in out
    assert "x.small = [-1, 7]\n" in out
    assert quantir_main(["inspect", "--metadata", "--full", str(path)]) == 0
    out = capsys.readouterr().out
    assert f'"w{n - 1}"]\n' in out and f"({n} items)" not in out
    assert quantir_main(["inspect", "--json", str(path)]) == 0
    tokens = json.loads(capsys.readouterr().out)["metadata"]["tokenizer.ggml.tokens"]
    assert tokens == {"array_length": n, "first": [f"w{i}" for i in range(16)]}
    assert quantir_main(["inspect", "--json", "--full", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)["metadata"]
    assert doc["tokenizer.ggml.tokens"] == [f"w{i}" for i in range(n)]
    assert doc["x.small"] == [-1, 7]
