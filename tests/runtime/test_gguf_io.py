"""GGUF reading, validation and writing (quantir.runtime.gguf)."""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType
from gguf.quants import dequantize

from quantir.compiler.encodings import layout_for
from quantir.dialects.encoding import QuantizationEncoding
from quantir.dialects.weight import DType
from quantir.runtime.gguf import (
    GGUFFormatError,
    MetadataValue,
    TensorToWrite,
    UnsupportedTensorTypeError,
    encoding_for_ggml_type,
    ggml_type_for_encoding,
    open_gguf,
    write_gguf,
)

T = GGMLQuantizationType
E = QuantizationEncoding
DATA = Path(__file__).resolve().parents[1] / "data" / "gguf"
GGUF_ENCODINGS = [e for e in E if e.is_gguf]


def random_blocks(encoding: QuantizationEncoding, rows: int, k: int, seed: int = 0) -> np.ndarray:
    """Random packed rows whose fp16 scales are small finite numbers."""
    rng = np.random.default_rng(seed)
    n_blocks = k // encoding.elements_per_block
    blocks = rng.integers(0, 256, size=(rows * n_blocks, encoding.block_size), dtype=np.uint8)
    for offset in layout_for(encoding).fp16_fields.values():
        scales = (rng.standard_normal(rows * n_blocks) * 0.01).astype(np.float16)
        blocks[:, offset : offset + 2] = scales.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(rows, n_blocks * encoding.block_size)


def within(seconds: float, fn, *args):
    """Run fn(*args) in a thread; fail if it takes longer than `seconds`."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__}{args} still running after {seconds} s"
    outcome["elapsed"] = time.perf_counter() - start
    return outcome


def expect_format_error(path: Path, *fragments: str) -> GGUFFormatError:
    outcome = within(1.0, open_gguf, path)
    error = outcome.get("error")
    assert isinstance(error, GGUFFormatError), (
        f"expected GGUFFormatError, got {outcome.get('error') or outcome.get('value')!r}"
    )
    assert str(path) in str(error)
    for fragment in fragments:
        assert fragment in str(error), str(error)
    return error


# --- type mapping ------------------------------------------------------------


@pytest.mark.parametrize("encoding", GGUF_ENCODINGS, ids=lambda e: e.name)
def test_encoding_and_ggml_type_map_both_ways(encoding):
    qtype = ggml_type_for_encoding(encoding)
    assert qtype.name == encoding.value
    assert encoding_for_ggml_type(qtype) is encoding
    assert encoding_for_ggml_type(int(qtype)) is encoding
    assert GGML_QUANT_SIZES[qtype] == (encoding.elements_per_block, encoding.block_size)


@pytest.mark.parametrize("qtype", [T.F32, T.F16, T.BF16])
def test_float_types_have_no_encoding(qtype):
    assert encoding_for_ggml_type(qtype) is None


@pytest.mark.parametrize("qtype", [T.IQ2_XXS, T.IQ4_NL, T.TQ1_0, T.Q8_1, T.Q8_K, T.MXFP4])
def test_unsupported_types_raise_with_the_supported_list(qtype):
    with pytest.raises(UnsupportedTensorTypeError, match=qtype.name) as info:
        encoding_for_ggml_type(qtype, tensor_name="blk.0.w")
    assert "blk.0.w" in str(info.value) and "Q4_K" in str(info.value)


def test_gptq_and_unknown_ids_are_rejected():
    with pytest.raises(ValueError, match="gptq"):
        ggml_type_for_encoding(E.GPTQ)
    with pytest.raises(ValueError, match="unknown ggml type id 99"):
        encoding_for_ggml_type(99)


# --- writing and reading back ------------------------------------------------


@pytest.mark.parametrize("encoding", GGUF_ENCODINGS, ids=lambda e: e.name)
def test_round_trip_of_every_encoding(tmp_path, encoding):
    rows, k = 6, 2 * 256
    packed = random_blocks(encoding, rows, k, seed=GGUF_ENCODINGS.index(encoding))
    path = tmp_path / "q.gguf"
    write_gguf(path, [TensorToWrite("w", encoding, [rows, k], packed)], arch="llama")

    with open_gguf(path) as model:
        t = model.tensor("w")
        assert t.encoding is encoding and t.ggml_type is ggml_type_for_encoding(encoding)
        assert t.shape == (rows, k) and t.ne == (k, rows)
        assert t.nbytes == packed.nbytes
        assert t.data.shape == packed.shape and np.array_equal(t.data, packed)
        # gguf-py's own reader sees the same bytes and ne-first shape.
        rt = GGUFReader(path).tensors[0]
        assert list(rt.shape) == [k, rows] and np.array_equal(rt.data, packed)
        # Values: gguf-py's dequantize (bit-identical to ggml) of what we read.
        values = t.to_float32()
        assert values.shape == (rows, k) and np.isfinite(values).all()
        assert np.array_equal(values, dequantize(packed, t.ggml_type))
        weight = t.as_weight()
        assert weight.quantization_encoding is encoding and weight.dtype is DType.uint8
        assert weight.shape == (rows, k) and weight.packed_shape == packed.shape


def test_data_is_a_view_of_the_mapped_file_not_a_copy(tmp_path):
    packed = random_blocks(E.Q4_K, 4, 256)
    path = tmp_path / "q.gguf"
    write_gguf(path, [TensorToWrite("w", E.Q4_K, (4, 256), packed)], arch="llama")
    t = open_gguf(path).tensor("w")
    assert isinstance(t.data.base, np.ndarray) or isinstance(t.data, np.memmap)
    assert not t.data.flags.owndata and not t.data.flags.writeable
    assert t.data_offset % 32 == 0
    with open(path, "rb") as f:
        f.seek(t.data_offset)
        assert f.read(packed.nbytes) == packed.tobytes()


def test_round_trip_of_plain_tensors(tmp_path):
    rng = np.random.default_rng(3)
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    f16 = rng.standard_normal((2, 4, 8)).astype(np.float16)
    bf16_values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)
    bf16 = (bf16_values.view(np.uint32) >> 16).astype(np.uint16)
    f64 = rng.standard_normal(7)
    i32 = np.arange(12, dtype=np.int32).reshape(3, 4)
    specs = [
        TensorToWrite("f32", np.float32, f32.shape, f32),
        TensorToWrite("f16", DType.float16, f16.shape, f16),
        TensorToWrite("bf16", DType.bfloat16, (4,), bf16),
        TensorToWrite("f64", np.float64, (7,), f64),
        TensorToWrite("i32", T.I32, (3, 4), i32),
    ]
    path = tmp_path / "plain.gguf"
    write_gguf(path, specs, arch="llama")
    model = open_gguf(path)
    assert [t.name for t in model.tensors] == ["f32", "f16", "bf16", "f64", "i32"]
    assert np.array_equal(model.tensor("f32").data, f32)
    assert model.tensor("f16").data.dtype == np.float16
    assert np.array_equal(model.tensor("f16").data, f16)
    assert model.tensor("f16").shape == (2, 4, 8) and model.tensor("f16").ne == (8, 4, 2)
    assert np.array_equal(model.tensor("bf16").data, bf16)
    assert np.array_equal(model.tensor("bf16").to_float32(), bf16_values)
    assert np.array_equal(model.tensor("f64").data, f64)
    assert np.array_equal(model.tensor("i32").data, i32)
    for t in model.tensors:
        assert t.encoding is None and t.is_supported and not t.is_quantized
    weight = model.tensor("bf16").as_weight()
    assert weight.dtype is DType.bfloat16 and weight.quantization_encoding is None
    assert model.type_counts() == {"F32": 1, "F16": 1, "BF16": 1, "F64": 1, "I32": 1}
    assert model.total_tensor_bytes == sum(t.nbytes for t in model.tensors)


def test_round_trip_of_metadata_types(tmp_path):
    undecodable = b"tok\xff\xfe".decode("utf-8", "surrogateescape")
    metadata = {
        "general.name": "tiny",
        "t.u8": MetadataValue(255, GGUFValueType.UINT8),
        "t.i8": MetadataValue(-128, GGUFValueType.INT8),
        "t.u16": MetadataValue(65535, GGUFValueType.UINT16),
        "t.i16": MetadataValue(-32768, GGUFValueType.INT16),
        "t.u32": 4_000_000_000,
        "t.i32": -5,
        "t.u64": 1 << 40,
        "t.i64": MetadataValue(-(1 << 40), GGUFValueType.INT64),
        "t.f32": 0.5,
        "t.f64": MetadataValue(1 / 3, GGUFValueType.FLOAT64),
        "t.bool": True,
        "t.str": "héllo ✓",
        "t.bad_utf8": undecodable,
        "t.strs": ["a", "", "ü", undecodable],
        "t.ints": [1, -2, 3],
        "t.floats": [0.25, 1.5],
        "t.bools": [True, False],
        "t.u16s": np.array([1, 2, 65535], dtype=np.uint16),
    }
    path = tmp_path / "meta.gguf"
    write_gguf(path, [], metadata, arch="testarch")
    md = open_gguf(path).metadata
    expected_types = {
        "general.architecture": GGUFValueType.STRING,
        "t.u32": GGUFValueType.UINT32,
        "t.i32": GGUFValueType.INT32,
        "t.u64": GGUFValueType.UINT64,
        "t.f32": GGUFValueType.FLOAT32,
        "t.bool": GGUFValueType.BOOL,
        "t.ints": GGUFValueType.ARRAY,
    }
    for key, vtype in expected_types.items():
        assert md.value_type(key) is vtype, key
    assert list(md) == ["general.architecture", *metadata]
    assert md["general.architecture"] == "testarch"
    for key, value in metadata.items():
        if isinstance(value, MetadataValue):
            assert md.typed(key) == value, key
        elif isinstance(value, np.ndarray):
            assert md[key] == value.tolist()
            assert md.element_type(key) is GGUFValueType.UINT16
        else:
            assert md[key] == value, key
    assert md.element_type("t.ints") is GGUFValueType.INT32
    assert md.element_type("t.strs") is GGUFValueType.STRING
    assert md.element_type("t.str") is None
    # Undecodable bytes survive a round trip exactly.
    raw = GGUFReader(path).fields["t.bad_utf8"].parts[-1].tobytes()
    assert raw == b"tok\xff\xfe"


def test_custom_alignment_is_honoured(tmp_path):
    packed = random_blocks(E.Q8_0, 3, 64)
    path = tmp_path / "a.gguf"
    write_gguf(
        path,
        [TensorToWrite("a", E.Q8_0, (3, 64), packed), TensorToWrite("b", E.Q8_0, (3, 64), packed)],
        {"general.alignment": MetadataValue(64, GGUFValueType.UINT32)},
        arch="llama",
    )
    model = open_gguf(path)
    assert model.alignment == 64
    assert all(t.data_offset % 64 == 0 for t in model.tensors)
    assert np.array_equal(model.tensor("b").data, packed)
    # An explicit default alignment stays in the metadata; no key means 32.
    write_gguf(path, [], {"general.alignment": MetadataValue(32, GGUFValueType.UINT32)}, arch="x")
    assert open_gguf(path).metadata["general.alignment"] == 32
    write_gguf(path, [], arch="x")
    assert "general.alignment" not in open_gguf(path).metadata


def test_data_may_be_computed_when_written(tmp_path):
    calls = []
    packed = random_blocks(E.Q6_K, 2, 256)

    def make():
        calls.append("made")
        return packed

    progress = []
    write_gguf(
        tmp_path / "lazy.gguf",
        [TensorToWrite("w", E.Q6_K, (2, 256), make)],
        arch="llama",
        progress=lambda done, total, name: progress.append((done, total, name)),
    )
    assert calls == ["made"]
    assert progress == [(0, packed.nbytes, "w"), (packed.nbytes, packed.nbytes, None)]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (TensorToWrite("w", E.Q4_K, (2, 300), np.zeros((2, 168), np.uint8)), "multiple of 256"),
        (TensorToWrite("w", E.Q4_K, (2, 256), np.zeros((2, 145), np.uint8)), r"\[2, 144\]"),
        (TensorToWrite("w", E.Q4_K, (2, 256), np.zeros((2, 144), np.int8)), "uint8"),
        (TensorToWrite("w", np.float32, (2, 3), np.zeros((3, 2), np.float32)), r"\[2, 3\]"),
        (TensorToWrite("w", E.GPTQ, (2, 256), np.zeros((2, 144), np.uint8)), "gptq"),
        (TensorToWrite("w", np.uint32, (2,), np.zeros(2, np.uint32)), "cannot store uint32"),
        (TensorToWrite("w", np.float32, (), np.zeros((), np.float32)), "1 to 4 positive"),
        (TensorToWrite("w", np.float32, (1, 1, 1, 1, 2), np.zeros(2, np.float32)), "1 to 4"),
        (TensorToWrite("w", np.float32, (0,), np.zeros(0, np.float32)), "positive"),
        (TensorToWrite("x" * 64, np.float32, (1,), np.zeros(1, np.float32)), "longer than 63"),
        (TensorToWrite("", np.float32, (1,), np.zeros(1, np.float32)), "non-empty"),
    ],
)
def test_write_rejects_bad_tensors_and_leaves_no_file(tmp_path, spec, match):
    path = tmp_path / "bad.gguf"
    with pytest.raises(ValueError, match=match):
        write_gguf(path, [spec], arch="llama")
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_metadata(tmp_path):
    one = [TensorToWrite("w", np.float32, (1,), np.zeros(1, np.float32))]
    path = tmp_path / "bad.gguf"
    cases = [
        ({"k": []}, "empty"),
        ({"k": MetadataValue(256, GGUFValueType.UINT8)}, "does not fit in UINT8"),
        ({"k": MetadataValue("x", GGUFValueType.INT32)}, "must be an int"),
        ({"k": [1, "a"]}, "must all be str"),
        ({"k": object()}, "cannot store"),
        ({"k": 1 << 70}, "64-bit"),
        ({"general.alignment": MetadataValue(48, GGUFValueType.UINT32)}, "power of two"),
        ({"general.architecture": "gpt2"}, "contradicts"),
    ]
    for metadata, match in cases:
        with pytest.raises(ValueError, match=match):
            write_gguf(path, one, metadata, arch="llama")
    with pytest.raises(ValueError, match="needs an architecture"):
        write_gguf(path, one)
    with pytest.raises(ValueError, match="used twice"):
        write_gguf(path, one + one, arch="llama")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_write_leaves_existing_file_untouched(tmp_path, failure):
    path = tmp_path / "out.gguf"
    path.write_bytes(b"previous contents")

    def explode():
        raise failure

    specs = [
        TensorToWrite("a", np.float32, (4,), np.ones(4, np.float32)),
        TensorToWrite("b", np.float32, (4,), explode),
    ]
    with pytest.raises(type(failure)):
        write_gguf(path, specs, arch="llama")
    assert path.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]


def test_successful_write_replaces_file_and_keeps_its_mode(tmp_path):
    path = tmp_path / "out.gguf"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    write_gguf(path, [TensorToWrite("a", np.float32, (2,), np.ones(2, np.float32))], arch="x")
    assert open_gguf(path).tensor("a").data.tolist() == [1.0, 1.0]
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"]


# --- unsupported tensor types ------------------------------------------------


def test_unsupported_types_are_listed_but_not_usable(tmp_path):
    rng = np.random.default_rng(5)
    q8k = rng.integers(0, 256, size=(2, GGML_QUANT_SIZES[T.Q8_K][1]), dtype=np.uint8)
    iq4 = rng.integers(0, 256, size=(3, GGML_QUANT_SIZES[T.IQ4_NL][1] * 2), dtype=np.uint8)
    path = tmp_path / "mixed.gguf"
    write_gguf(
        path,
        [
            TensorToWrite("k8", T.Q8_K, (2, 256), q8k),
            TensorToWrite("iq", T.IQ4_NL, (3, 64), iq4),
            TensorToWrite("ok", E.Q8_0, (1, 32), random_blocks(E.Q8_0, 1, 32)),
        ],
        arch="llama",
    )
    model = open_gguf(path)
    assert [(t.name, t.type_name) for t in model.tensors] == [
        ("k8", "Q8_K"),
        ("iq", "IQ4_NL"),
        ("ok", "Q8_0"),
    ]
    k8 = model.tensor("k8")
    assert not k8.is_supported and k8.is_quantized and k8.encoding is None
    assert k8.shape == (2, 256) and k8.nbytes == q8k.nbytes
    assert np.array_equal(k8.raw_bytes, q8k.reshape(-1))  # bytes can still be copied
    for use in (lambda t: t.data, lambda t: t.as_weight(), lambda t: t.to_float32()):
        with pytest.raises(UnsupportedTensorTypeError) as info:
            use(k8)
        message = str(info.value)
        assert "'k8'" in message and "Q8_K" in message and "Q4_K, " in message
        assert str(path) in message
    with pytest.raises(UnsupportedTensorTypeError, match="IQ4_NL"):
        _ = model.tensor("iq").data


def test_as_weight_needs_two_dimensions(tmp_path):
    packed = random_blocks(E.Q4_0, 4, 64).reshape(2, 2, -1)
    path = tmp_path / "3d.gguf"
    write_gguf(path, [TensorToWrite("experts", E.Q4_0, (2, 2, 64), packed)], arch="llama")
    t = open_gguf(path).tensor("experts")
    assert t.data.shape == (2, 2, 36) and t.shape == (2, 2, 64)
    with pytest.raises(ValueError, match=r"2-D \[N, K\]"):
        t.as_weight()


def test_unknown_tensor_name_is_a_key_error(tmp_path):
    path = tmp_path / "x.gguf"
    write_gguf(path, [TensorToWrite("a", np.float32, (1,), np.zeros(1, np.float32))], arch="x")
    model = open_gguf(path)
    assert "a" in model and "b" not in model and len(model) == 1
    with pytest.raises(KeyError, match="no tensor named 'b'"):
        model.tensor("b")


# --- corrupt files -----------------------------------------------------------


@pytest.fixture
def valid_file(tmp_path) -> Path:
    """A small valid file: arrays, strings, a quantized and two float tensors."""
    path = tmp_path / "valid.gguf"
    write_gguf(
        path,
        [
            TensorToWrite("tok.weight", E.Q4_K, (2, 256), random_blocks(E.Q4_K, 2, 256)),
            TensorToWrite("norm.weight", np.float32, (8,), np.ones(8, np.float32)),
            TensorToWrite("out.weight", E.Q8_0, (3, 64), random_blocks(E.Q8_0, 3, 64)),
        ],
        {
            "llama.block_count": 1,
            "tokenizer.ggml.tokens": ["<a>", "<b>", "<c>"],
            "tokenizer.ggml.scores": [0.0, 1.0, 2.0],
        },
        arch="llama",
    )
    return path


def patched(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    buf = bytearray(src.read_bytes())
    buf[offset : offset + len(data)] = data
    dst.write_bytes(bytes(buf))
    return dst


def string_record(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


def info_offset(path: Path, name: str) -> int:
    """Offset just after a tensor info's name (its n_dims field)."""
    return path.read_bytes().index(string_record(name)) + 8 + len(name)


def kv_value_offset(path: Path, key: str) -> int:
    """Offset of a metadata pair's value type field."""
    return path.read_bytes().index(string_record(key)) + 8 + len(key)


def test_valid_fixture_file_opens(valid_file):
    model = open_gguf(valid_file)
    assert len(model) == 3 and model.metadata["tokenizer.ggml.tokens"] == ["<a>", "<b>", "<c>"]


def test_every_truncation_is_a_format_error(valid_file, tmp_path):
    data = valid_file.read_bytes()
    model = open_gguf(valid_file)
    # gguf-py pads after the last tensor: cutting only padding leaves a valid file.
    data_end = max(t.data_offset + t.nbytes for t in model.tensors)
    cuts = range(data_end)  # every byte of a small file
    target = tmp_path / "cut.gguf"
    worst = 0.0
    for cut in cuts:
        target.write_bytes(data[:cut])
        outcome = within(1.0, open_gguf, target)
        assert isinstance(outcome.get("error"), GGUFFormatError), (cut, outcome)
        worst = max(worst, outcome["elapsed"])
    assert worst < 1.0


def test_header_problems(valid_file, tmp_path):
    bad = tmp_path / "bad.gguf"
    expect_format_error(patched(valid_file, bad, 0, b"GGUX"), "not a GGUF file", "GGUX")
    expect_format_error(patched(valid_file, bad, 4, struct.pack("<I", 1)), "version 1")
    expect_format_error(patched(valid_file, bad, 4, struct.pack("<I", 4)), "version 4")
    expect_format_error(patched(valid_file, bad, 4, struct.pack(">I", 3)), "big-endian")
    expect_format_error(patched(valid_file, bad, 8, struct.pack("<Q", 1 << 60)), "tensors")
    expect_format_error(patched(valid_file, bad, 16, struct.pack("<Q", 1 << 60)), "metadata pairs")
    expect_format_error(patched(valid_file, bad, 8, struct.pack("<Q", 2**64 - 1)), "tensors")
    # Version 2 has the same layout as 3 and stays readable.
    assert open_gguf(patched(valid_file, bad, 4, struct.pack("<I", 2))).version == 2
    # One tensor more than the infos hold: runs into the data section.
    expect_format_error(patched(valid_file, bad, 8, struct.pack("<Q", 4)))


def test_file_level_problems(tmp_path):
    expect_format_error(tmp_path / "missing.gguf", "no such file")
    expect_format_error(tmp_path, "is a directory")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    expect_format_error(empty, "too small")
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    expect_format_error(fifo, "not a regular file")


def test_metadata_problems(valid_file, tmp_path):
    bad = tmp_path / "bad.gguf"
    key_len_at = valid_file.read_bytes().index(string_record("llama.block_count"))
    expect_format_error(
        patched(valid_file, bad, key_len_at, struct.pack("<Q", 1 << 62)), "truncated"
    )
    expect_format_error(patched(valid_file, bad, key_len_at + 8, b"\xff\xfe"), "UTF-8")
    vtype_at = kv_value_offset(valid_file, "llama.block_count")
    expect_format_error(
        patched(valid_file, bad, vtype_at, struct.pack("<I", 77)), "value type id 77"
    )
    tokens_at = kv_value_offset(valid_file, "tokenizer.ggml.tokens")
    # The array's element type, then its length.
    expect_format_error(
        patched(valid_file, bad, tokens_at + 4, struct.pack("<I", GGUFValueType.ARRAY)),
        "array of arrays",
    )
    expect_format_error(
        patched(valid_file, bad, tokens_at + 8, struct.pack("<Q", 1 << 40)), "limit"
    )
    expect_format_error(
        patched(valid_file, bad, tokens_at + 8, struct.pack("<Q", 1 << 22)), "truncated"
    )
    scores_at = kv_value_offset(valid_file, "tokenizer.ggml.scores")
    expect_format_error(
        patched(valid_file, bad, scores_at + 8, struct.pack("<Q", 1 << 23)), "truncated"
    )
    # A string element whose length runs past the end of the file.
    first_token_at = tokens_at + 4 + 4 + 8
    expect_format_error(
        patched(valid_file, bad, first_token_at, struct.pack("<Q", 1 << 50)), "truncated"
    )
    # Rename the second key to the first: duplicate keys.
    dup = valid_file.read_bytes().replace(b"tokenizer.ggml.scores", b"tokenizer.ggml.tokens")
    bad.write_bytes(dup)
    expect_format_error(bad, "appears twice")


def test_alignment_problems(tmp_path):
    src = tmp_path / "aligned.gguf"
    write_gguf(
        src,
        [TensorToWrite("a", np.float32, (4,), np.ones(4, np.float32))],
        {"general.alignment": MetadataValue(64, GGUFValueType.UINT32)},
        arch="llama",
    )
    at = kv_value_offset(src, "general.alignment")
    bad = tmp_path / "bad.gguf"
    expect_format_error(patched(src, bad, at + 4, struct.pack("<I", 48)), "power of two")
    expect_format_error(patched(src, bad, at + 4, struct.pack("<I", 0)), "power of two")
    expect_format_error(
        patched(src, bad, at, struct.pack("<I", GGUFValueType.INT32)), "must be UINT32"
    )


def test_tensor_info_problems(valid_file, tmp_path):
    bad = tmp_path / "bad.gguf"
    at = info_offset(valid_file, "tok.weight")  # n_dims=2, ne0=256, ne1=2, type, offset
    expect_format_error(patched(valid_file, bad, at, struct.pack("<I", 0)), "0 dimensions")
    expect_format_error(patched(valid_file, bad, at, struct.pack("<I", 5)), "5 dimensions")
    expect_format_error(patched(valid_file, bad, at, struct.pack("<I", 1 << 31)), "dimensions")
    expect_format_error(patched(valid_file, bad, at + 4, struct.pack("<Q", 0)), "1..2^63-1")
    expect_format_error(patched(valid_file, bad, at + 12, struct.pack("<Q", 2**64 - 1)), "1..2^63")
    # Each dimension plausible alone, the product absurd.
    huge = struct.pack("<QQ", 1 << 40, 1 << 40)
    expect_format_error(patched(valid_file, bad, at + 4, huge), "too many elements")
    expect_format_error(
        patched(valid_file, bad, at + 4, struct.pack("<QQ", 256, 1 << 30)), "more than the whole"
    )
    expect_format_error(patched(valid_file, bad, at + 4, struct.pack("<Q", 100)), "multiple")
    expect_format_error(patched(valid_file, bad, at + 20, struct.pack("<I", 99)), "type id 99")
    expect_format_error(patched(valid_file, bad, at + 20, struct.pack("<I", 4)), "type id 4")
    # The tensor's own offset: misaligned, past the end, overlapping the next.
    expect_format_error(patched(valid_file, bad, at + 24, struct.pack("<Q", 8)), "alignment")
    expect_format_error(patched(valid_file, bad, at + 24, struct.pack("<Q", 1 << 40)), "truncated")
    norm_at = info_offset(valid_file, "norm.weight")  # 1 dim: type at +12, offset at +16
    expect_format_error(patched(valid_file, bad, norm_at + 16, struct.pack("<Q", 256)), "overlap")
    # Invalid UTF-8 in a tensor name, and two tensors with one name.
    name_at = valid_file.read_bytes().index(b"tok.weight")
    expect_format_error(patched(valid_file, bad, name_at, b"\xc3\x28"), "UTF-8")
    bad.write_bytes(valid_file.read_bytes().replace(b"out.weight", b"tok.weight"))
    expect_format_error(bad, "appears twice")


def test_random_corruption_never_escapes_as_another_error(valid_file, tmp_path):
    """Flip random header bytes: every outcome is a clean open or a GGUFFormatError."""
    rng = np.random.default_rng(11)
    data = bytearray(valid_file.read_bytes())
    header_end = open_gguf(valid_file).data_offset
    target = tmp_path / "fuzz.gguf"
    for _ in range(300):
        corrupt = bytearray(data)
        for pos in rng.integers(0, header_end, size=3):
            corrupt[pos] = rng.integers(0, 256)
        target.write_bytes(bytes(corrupt))
        outcome = within(1.0, open_gguf, target)
        error = outcome.get("error")
        assert error is None or isinstance(error, GGUFFormatError), repr(error)


# --- a real llama.cpp file ---------------------------------------------------


def test_llama_cpp_q4_k_m_file_loads():
    path = DATA / "tiny-llama-q4_k_m.gguf"
    model = open_gguf(path)
    assert model.version == 3 and model.architecture == "llama"
    assert model.metadata["general.file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert model.metadata["general.quantization_version"] == 2
    assert model.metadata["llama.block_count"] == 2
    assert model.type_counts() == {"Q4_K": 12, "F32": 5, "Q6_K": 2, "Q5_0": 1, "Q8_0": 1}
    # llama.cpp's choices: Q6_K output and one attn_v, fallbacks for K=288.
    assert model.tensor("output.weight").encoding is E.Q6_K
    assert model.tensor("blk.1.attn_v.weight").encoding is E.Q6_K
    assert model.tensor("blk.0.ffn_down.weight").encoding is E.Q5_0
    assert model.tensor("blk.1.ffn_down.weight").encoding is E.Q8_0

    reference = {t.name: t for t in GGUFReader(path).tensors}
    for t in model.tensors:
        ref = reference[t.name]
        assert t.ggml_type is T(ref.tensor_type) and t.nbytes == ref.n_bytes
        assert t.shape == tuple(reversed([int(n) for n in ref.shape]))
        if t.encoding is None:
            assert t.ggml_type is T.F32 and len(t.shape) == 1
            continue
        n, k = t.shape
        expected = (n, k // t.encoding.elements_per_block * t.encoding.block_size)
        assert t.data.shape == expected == t.as_weight().packed_shape
        assert np.array_equal(t.data, ref.data)
        # The generator drew weights from N(0, 0.05): dequantized values agree.
        values = dequantize(t.data, t.ggml_type)
        assert np.isfinite(values).all() and 0.04 < values.std() < 0.06, t.name


# Worst acceptable relative RMS error of llama.cpp's quantization of the
# small-input fixture, per encoding (Q2_K is coarse).
REL_RMS = {
    E.Q2_K: 0.45,
    E.Q3_K: 0.25,
    E.Q4_0: 0.15,
    E.Q4_1: 0.15,
    E.Q4_K: 0.12,
    E.Q5_0: 0.08,
    E.Q5_1: 0.08,
    E.Q5_K: 0.06,
    E.Q6_K: 0.03,
    E.Q8_0: 0.01,
}
PURE_FILES = {
    E.Q4_0: "Q4_0",
    E.Q4_1: "Q4_1",
    E.Q5_0: "Q5_0",
    E.Q5_1: "Q5_1",
    E.Q8_0: "Q8_0",
    E.Q2_K: "Q2_K",
    E.Q3_K: "Q3_K_S",
    E.Q4_K: "Q4_K_S",
    E.Q5_K: "Q5_K_S",
    E.Q6_K: "Q6_K",
}


@pytest.mark.parametrize("encoding", list(PURE_FILES), ids=lambda e: e.name)
def test_llama_cpp_quantized_values_match_the_float_input(encoding):
    """Shapes and orientation are right: llama.cpp's blocks decode to the input."""
    source = open_gguf(DATA / "mini-f32.gguf")
    quantized = open_gguf(DATA / f"mini-pure-{PURE_FILES[encoding]}.gguf")
    assert sorted(t.name for t in quantized.tensors) == sorted(t.name for t in source.tensors)
    for t in quantized.tensors:
        original = source.tensor(t.name).to_float32()
        values = t.to_float32()
        assert values.shape == original.shape == t.shape
        rms = np.sqrt(np.mean((values - original) ** 2)) / np.sqrt(np.mean(original**2))
        limit = REL_RMS[t.encoding] if t.encoding is not None else 1e-3
        assert rms < limit, (t.name, t.type_name, rms)
