"""GPTQ checkpoints: packing, the numpy reference dequantizer, RTN, loading and saving.

The slow helpers below re-derive the layout of docs/gptq.md bit by bit, independently of
quantir.runtime.gptq's vectorized code.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from quantir.dialects.encoding import QuantizationConfig
from quantir.dialects.weight import DType
from quantir.runtime import gptq
from quantir.runtime.gptq import (
    GPTQFormatError,
    GPTQLinear,
    dequantize_gptq_reference,
    describe_checkpoint,
    load_gptq_checkpoint,
    pack_qweight,
    pack_qzeros,
    quantize_gptq_rtn,
    save_gptq_checkpoint,
    unpack_qweight,
    unpack_qzeros,
)

BITS = (2, 3, 4, 8)


# -- independent slow references ------------------------------------------------


def slow_stream_value(words: np.ndarray, col: int, index: int, bits: int) -> int:
    """Code ``index`` of column ``col``: bits bits*index.. of the LSB-first word stream."""
    value = 0
    for i in range(bits):
        p = bits * index + i
        word = int(words[p // 32, col]) & 0xFFFFFFFF
        value |= ((word >> (p % 32)) & 1) << i
    return value


def slow_pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack codes [L, M] along L bit by bit."""
    length, cols = codes.shape
    words = np.zeros((length * bits // 32, cols), dtype=np.uint64)
    for c in range(cols):
        for j in range(length):
            for i in range(bits):
                if (int(codes[j, c]) >> i) & 1:
                    p = bits * j + i
                    words[p // 32, c] |= np.uint64(1 << (p % 32))
    return words.astype(np.uint32).view(np.int32)


def slow_dequantize(layer: GPTQLinear, cols: int) -> np.ndarray:
    """The docs/gptq.md formula, one element at a time, for output rows 0..cols-1.

    Returns float32 [cols, K].
    """
    bits = layer.config.bits
    offset = 1 if layer.checkpoint_format == "gptq" else 0
    out = np.empty((cols, layer.in_features), dtype=np.float32)
    for n in range(cols):
        for k in range(layer.in_features):
            g = int(layer.g_idx[k])
            q = slow_stream_value(layer.qweight, n, k, bits)
            z = slow_stream_value(layer.qzeros.T, g, n, bits) + offset
            out[n, k] = np.float32(layer.scales[g, n]) * np.float32(q - z)
    return out


def fp16_at_least(x: float) -> np.float16:
    h = np.float16(x)
    return h if float(h) >= x else np.nextafter(h, np.float16(np.inf))


# -- packing -----------------------------------------------------------------------


@pytest.mark.parametrize("bits", BITS)
def test_pack_matches_bitwise_stream_and_round_trips(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, size=(64, 5))
    packed = pack_qweight(codes, bits)
    assert packed.dtype == np.int32 and packed.shape == (64 * bits // 32, 5)
    np.testing.assert_array_equal(packed, slow_pack(codes, bits))
    np.testing.assert_array_equal(unpack_qweight(packed, bits), codes)
    zeros = rng.integers(0, 1 << bits, size=(3, 32))
    qzeros = pack_qzeros(zeros, bits)
    assert qzeros.shape == (3, 32 * bits // 32)
    np.testing.assert_array_equal(qzeros, slow_pack(zeros.T, bits).T)
    np.testing.assert_array_equal(unpack_qzeros(qzeros, bits), zeros)


def test_pack_known_words():
    # 4-bit: code j sits at bits 4j..4j+3 (LSB first), so 0..7 reads 0x76543210.
    assert pack_qweight(np.arange(8).reshape(8, 1), 4)[0, 0] == 0x76543210
    # The top code fills the sign bit: still read as unsigned.
    word = pack_qweight(np.full((8, 1), 15), 4)
    assert word[0, 0] == -1
    np.testing.assert_array_equal(unpack_qweight(word, 4), np.full((8, 1), 15))
    # 3-bit: code 10 straddles words 0 and 1 (bits 30, 31 | bit 0), code 21
    # straddles words 1 and 2 (bit 31 | bits 0, 1).
    codes = np.zeros((32, 1), dtype=np.int64)
    codes[10], codes[21] = 0b111, 0b111
    words = pack_qweight(codes, 3).view(np.uint32)[:, 0]
    assert list(words) == [0xC0000000, 0x80000001, 0x00000003]


@pytest.mark.parametrize(
    "codes, bits, match",
    [
        (np.zeros((30, 2), dtype=np.int32), 3, "multiple of 32"),
        (np.full((8, 2), 16), 4, r"\[0, 15\]"),
        (np.full((8, 2), -1), 4, r"\[0, 15\]"),
        (np.zeros((8, 2), dtype=np.float32), 4, "integers"),
        (np.zeros(8, dtype=np.int32), 4, "2-D"),
        (np.zeros((8, 2), dtype=np.int32), 5, "bits"),
    ],
)
def test_pack_rejects_bad_codes(codes, bits, match):
    with pytest.raises(ValueError, match=match):
        pack_qweight(codes, bits)


def test_unpack_rejects_bad_words():
    with pytest.raises(ValueError, match="runs of 3 words"):
        unpack_qweight(np.zeros((4, 2), dtype=np.int32), 3)
    with pytest.raises(ValueError, match="int32"):
        unpack_qweight(np.zeros((4, 2), dtype=np.int64), 4)


# -- reference dequantizer ------------------------------------------------------------

# (sym, checkpoint_format, desc_act): every combination appears for every bits/group.
VARIANTS = [
    (True, "gptq", False),
    (False, "gptq_v2", True),
    (False, "gptq", True),
    (True, "gptq_v2", False),
]


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("group_size", [-1, 32, 128, 96])
@pytest.mark.parametrize("sym, fmt, desc_act", VARIANTS)
def test_dequantize_reference_matches_slow_formula(bits, group_size, sym, fmt, desc_act):
    rng = np.random.default_rng(bits * 1000 + group_size)
    weight = rng.standard_normal((32, 384)).astype(np.float32)
    layer = quantize_gptq_rtn(
        weight, bits, group_size, sym=sym, desc_act=desc_act, checkpoint_format=fmt, seed=7
    )
    dense = dequantize_gptq_reference(layer)
    assert dense.dtype == np.float32 and dense.shape == (32, 384)
    # Bit-exact against the element loop (first rows: the loop is slow).
    np.testing.assert_array_equal(dense[:4], slow_dequantize(layer, 4))
    # Round to nearest: every weight within half a step of its value.
    step = layer.scales.astype(np.float64)[layer.g_idx].T
    assert np.all(np.abs(dense - weight) <= step / 2 * (1 + 1e-6))


def test_dequantize_handcrafted_v1_and_v2():
    # K = 16, N = 8, 4-bit, group 8: q = k % 16, stored zero 3, scale 0.5.
    cfg = QuantizationConfig("gptq", 4, 8)
    q = np.tile(np.arange(16)[:, None], (1, 8))
    parts = {
        "qweight": pack_qweight(q, 4),
        "qzeros": pack_qzeros(np.full((2, 8), 3), 4),
        "scales": np.full((2, 8), 0.5, dtype=np.float16),
        "g_idx": (np.arange(16) // 8).astype(np.int32),
        "bias": None,
        "config": cfg,
    }
    v1 = dequantize_gptq_reference(GPTQLinear("l", checkpoint_format="gptq", **parts))
    v2 = dequantize_gptq_reference(GPTQLinear("l", checkpoint_format="gptq_v2", **parts))
    np.testing.assert_array_equal(v1[0], 0.5 * (np.arange(16) - 4))
    np.testing.assert_array_equal(v2[0], 0.5 * (np.arange(16) - 3))


# -- RTN ------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", BITS)
def test_rtn_sym_grid(bits):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((32, 64)) * 0.02
    layer = quantize_gptq_rtn(w, bits, 32, sym=True, checkpoint_format="gptq")
    np.testing.assert_array_equal(layer.zero_points(), 1 << (bits - 1))
    np.testing.assert_array_equal(unpack_qzeros(layer.qzeros, bits), (1 << (bits - 1)) - 1)
    maxq = (1 << bits) - 1
    for g in range(2):
        amax = np.abs(w[:, g * 32 : (g + 1) * 32]).max(axis=1)
        expected = [fp16_at_least(2 * a / maxq) for a in amax]
        np.testing.assert_array_equal(layer.scales[g], expected)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("fmt", ["gptq", "gptq_v2"])
def test_rtn_asym_one_sided_groups(bits, fmt):
    # All-positive and all-zero groups: v2 stores zero 0, v1 cannot and shifts to 1.
    w = np.abs(np.random.default_rng(4).standard_normal((32, 64))) + 0.5
    w[:, 32:] = 0.0
    layer = quantize_gptq_rtn(w, bits, 32, sym=False, checkpoint_format=fmt)
    stored = unpack_qzeros(layer.qzeros, bits)
    real = layer.zero_points()
    np.testing.assert_array_equal(real, stored + (1 if fmt == "gptq" else 0))
    assert real[0].min() == (1 if fmt == "gptq" else 0)
    dense = dequantize_gptq_reference(layer)
    step = layer.scales.astype(np.float64)[layer.g_idx].T
    assert np.all(np.abs(dense - w) <= step / 2 * (1 + 1e-6))
    np.testing.assert_array_equal(dense[:, 32:], 0.0)


def test_rtn_act_order_g_idx():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((32, 128)).astype(np.float32)
    perm = rng.permutation(128)
    layer = quantize_gptq_rtn(w, 4, 32, desc_act=True, perm=perm)
    np.testing.assert_array_equal(layer.g_idx[perm], np.arange(128) // 32)
    assert np.bincount(layer.g_idx).tolist() == [32] * 4
    # Group g's scale comes from the columns perm[32g:32g+32]; qweight stays in k order.
    cols = perm[32:64]
    expected = [fp16_at_least(2 * a / 15) for a in np.abs(w[:, cols].astype(np.float64)).max(1)]
    np.testing.assert_array_equal(layer.scales[1], expected)
    dense = dequantize_gptq_reference(layer)
    step = layer.scales.astype(np.float64)[layer.g_idx].T
    assert np.all(np.abs(dense - w) <= step / 2 * (1 + 1e-6))
    # Without perm: a seeded random permutation, reproducible.
    a = quantize_gptq_rtn(w, 4, 32, desc_act=True, seed=1)
    b = quantize_gptq_rtn(w, 4, 32, desc_act=True, seed=1)
    np.testing.assert_array_equal(a.g_idx, b.g_idx)
    assert not np.array_equal(a.g_idx, np.arange(128) // 32)


def test_rtn_bias_and_weight_declaration():
    w = np.random.default_rng(6).standard_normal((64, 96))
    layer = quantize_gptq_rtn(w, 3, 32, name="blk.0.up", bias=np.arange(64.0))
    assert layer.bias.dtype == np.float16 and layer.logical_shape == (64, 96)
    assert (layer.in_features, layer.out_features, layer.num_groups) == (96, 64, 3)
    assert repr(layer).startswith("GPTQLinear(name='blk.0.up', shape=[N=64, K=96], bits=3")
    decl = layer.to_weight()
    assert decl.shape == (64, 96) and decl.dtype is DType.int32
    assert [t.shape for t in decl.packed_tensors] == [a.shape for a in layer.tensors()]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight": np.zeros((4, 64))}, "N=4"),
        ({"weight": np.zeros((32, 48))}, "does not divide"),
        ({"weight": np.zeros(64)}, "2-D float"),
        ({"weight": np.zeros((32, 64), dtype=np.int32)}, "2-D float"),
        ({"weight": np.full((32, 64), np.nan)}, "NaN"),
        ({"weight": np.full((32, 64), 1e6)}, "overflows float16"),
        ({"bits": 5}, "bits"),
        ({"group_size": 0}, "group_size"),
        ({"checkpoint_format": "marlin"}, "checkpoint_format"),
        ({"perm": np.arange(64)}, "desc_act=True"),
        ({"desc_act": True, "perm": np.zeros(64, dtype=int)}, "permutation"),
        ({"bias": np.zeros(3)}, "bias"),
    ],
)
def test_rtn_rejects_bad_input(kwargs, match):
    args = {"weight": np.zeros((32, 64)), "bits": 4, "group_size": 32} | kwargs
    with pytest.raises(GPTQFormatError, match=match):
        quantize_gptq_rtn(**args)


# -- GPTQLinear validation ---------------------------------------------------------------


def _parts(bits=4, group_size=32, desc_act=False, k=64, n=32):
    layer = quantize_gptq_rtn(
        np.random.default_rng(0).standard_normal((n, k)),
        bits,
        group_size,
        desc_act=desc_act,
        name="model.layers.0.mlp.down_proj",
        bias=np.zeros(n),
    )
    return {
        "name": layer.name,
        "qweight": layer.qweight,
        "qzeros": layer.qzeros,
        "scales": layer.scales,
        "g_idx": layer.g_idx,
        "bias": layer.bias,
        "config": layer.config,
    }


@pytest.mark.parametrize(
    "change, match",
    [
        ({"qweight": np.zeros((8, 32), dtype=np.int64)}, r"qweight must be int32 \[8, 32\].*int64"),
        ({"qweight": np.zeros((8,), dtype=np.int32)}, "qweight must be a non-empty 2-D"),
        ({"qzeros": np.zeros((2, 5), dtype=np.int32)}, r"qzeros must be int32 \[2, 4\].*\[2, 5\]"),
        ({"scales": np.zeros((2, 32), dtype=np.float32)}, "scales must be float16.*float32"),
        ({"scales": np.zeros((1, 32), dtype=np.float16)}, r"scales must be float16 \[2, 32\]"),
        ({"g_idx": np.zeros(64, dtype=np.int64)}, "g_idx must be int32"),
        ({"g_idx": np.zeros(63, dtype=np.int32)}, r"g_idx must be int32 \[64\]"),
        ({"bias": np.zeros(32, dtype=np.float32)}, "bias must be float16"),
        ({"bias": [0.0] * 32}, "bias must be a numpy array"),
        ({"g_idx": np.full(64, 2, dtype=np.int32)}, r"\[0, 2\).*g_idx\[0\] = 2"),
        ({"g_idx": np.full(64, -1, dtype=np.int32)}, r"g_idx\[0\] = -1"),
        ({"g_idx": np.arange(64, dtype=np.int32)[::-1] // 32}, "desc_act is False"),
        ({"config": QuantizationConfig("gptq", 4, 48)}, "does not divide"),
        ({"config": QuantizationConfig("gptq", 3, 32)}, "multiple of 3 rows"),
        ({"checkpoint_format": "gptq_v3"}, "checkpoint_format"),
        ({"config": {"bits": 4}}, "QuantizationConfig"),
        ({"name": ""}, "name"),
    ],
)
def test_layer_validation_errors(change, match):
    with pytest.raises(GPTQFormatError, match=match) as info:
        GPTQLinear(**(_parts() | change))
    if change.get("name") != "":
        assert "model.layers.0.mlp.down_proj" in str(info.value)


def test_layer_validation_packing_limits():
    # 4-bit qzeros pack N in runs of 8: N = 4 cannot be stored.
    parts = _parts() | {
        "qweight": np.zeros((8, 4), dtype=np.int32),
        "scales": np.zeros((2, 4), dtype=np.float16),
        "qzeros": np.zeros((2, 1), dtype=np.int32),
        "bias": None,
    }
    with pytest.raises(GPTQFormatError, match="N=4 is not a multiple of 8"):
        GPTQLinear(**parts)
    # desc_act allows any g_idx in range.
    parts = _parts(desc_act=True)
    layer = GPTQLinear(**(parts | {"g_idx": np.zeros(64, dtype=np.int32)}))
    assert layer.group_size == 32 and layer.nbytes > 0


# -- checkpoints on disk ------------------------------------------------------------------


def _model(bits=4, group_size=32, desc_act=False, fmt="gptq", sym=True, layers=3):
    rng = np.random.default_rng(11)
    out = []
    for i in range(layers):
        w = rng.standard_normal((64, 128)).astype(np.float32)
        out.append(
            quantize_gptq_rtn(
                w,
                bits,
                group_size,
                sym=sym,
                desc_act=desc_act,
                checkpoint_format=fmt,
                name=f"model.layers.{i}.mlp.up_proj",
                bias=np.ones(64) if i == 0 else None,
            )
        )
    extra = {
        "model.embed_tokens.weight": rng.standard_normal((10, 128)).astype(np.float16),
        "model.norm.weight": np.ones(128, dtype=np.float32),
        "model.rotary.position_ids": np.arange(16, dtype=np.int64),
    }
    return out, extra


def _assert_same(loaded, layers, extra):
    assert list(loaded.layers) == [layer.name for layer in layers]
    for layer in layers:
        got = loaded.layers[layer.name]
        for a, b in zip(got.tensors(), layer.tensors()):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert (got.bias is None) == (layer.bias is None)
        np.testing.assert_array_equal(
            dequantize_gptq_reference(got), dequantize_gptq_reference(layer)
        )
    assert set(loaded.tensors) == set(extra)
    for name, arr in extra.items():
        np.testing.assert_array_equal(loaded.tensors[name], arr)
        assert loaded.tensors[name].dtype == arr.dtype


@pytest.mark.parametrize("config_file", ["quantize_config.json", "config.json"])
@pytest.mark.parametrize("fmt, desc_act", [("gptq", False), ("gptq_v2", True)])
def test_save_load_round_trip(tmp_path, config_file, fmt, desc_act):
    layers, extra = _model(bits=3, desc_act=desc_act, fmt=fmt, sym=False)
    cfg = layers[0].config
    written = save_gptq_checkpoint(tmp_path, layers, cfg, fmt, extra, config_file=config_file)
    assert [p.name for p in written] == ["model.safetensors", config_file]
    assert not list(tmp_path.glob(".*tmp*"))
    loaded = load_gptq_checkpoint(tmp_path)
    assert loaded.config == cfg and loaded.checkpoint_format == fmt
    assert loaded.config_file.name == config_file
    _assert_same(loaded, layers, extra)
    # A single file, with the config found beside it.
    again = load_gptq_checkpoint(tmp_path / "model.safetensors")
    assert list(again.layers) == list(loaded.layers)


def test_config_json_keeps_other_keys_and_is_read(tmp_path):
    layers, _ = _model()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 128}))
    save_gptq_checkpoint(tmp_path, layers, layers[0].config, config_file="config.json")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model_type"] == "llama"
    assert data["quantization_config"]["bits"] == 4
    assert data["quantization_config"]["checkpoint_format"] == "gptq"


def test_sharded_round_trip(tmp_path):
    layers, extra = _model(layers=4)
    cfg = layers[0].config
    written = save_gptq_checkpoint(tmp_path, layers, cfg, "gptq", extra, max_shard_bytes=9000)
    shards = sorted(tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 2 and all(p in written for p in shards)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    loaded = load_gptq_checkpoint(tmp_path)
    assert loaded.files == tuple(shards)
    _assert_same(loaded, layers, extra)
    # A layer whose tensors sit in two shards (allowed by the index format).
    layer = layers[0]
    names = {f"{layer.name}.{t}": a for t, a in zip(gptq.GPTQ_TENSOR_NAMES, layer.tensors())}
    other = tmp_path / "split"
    other.mkdir()
    from safetensors.numpy import save_file

    save_file({k: names[k] for k in list(names)[:2]}, other / "a.safetensors")
    save_file({k: names[k] for k in list(names)[2:]}, other / "b.safetensors")
    weight_map = {k: ("a" if i < 2 else "b") + ".safetensors" for i, k in enumerate(names)}
    (other / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _write_config(other, bits=4, group_size=32)
    assert load_gptq_checkpoint(other).layers[layer.name].in_features == 128


def _write_config(directory: Path, name="quantize_config.json", **fields):
    (directory / name).write_text(json.dumps(fields))


def _write_raw_safetensors(path: Path, tensors: dict[str, tuple[str, list, bytes]]):
    """A safetensors file written by hand (numpy cannot hold BF16)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        offsets = [len(data), len(data) + len(raw)]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        data += raw
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def test_gptqmodel_style_config_and_missing_g_idx(tmp_path):
    layer = _model(layers=1)[0][0]
    from safetensors.numpy import save_file

    save_file(
        {f"{layer.name}.{t}": getattr(layer, t) for t in ("qweight", "qzeros", "scales")},
        tmp_path / "model.safetensors",
    )
    # GPTQModel's field names; no desc_act (default False) -> g_idx rebuilt as k // gs.
    _write_config(tmp_path, method="gptq", bits=4, group_size=32, format="gptq_v2")
    loaded = load_gptq_checkpoint(tmp_path)
    assert loaded.checkpoint_format == "gptq_v2" and loaded.config.sym is True
    np.testing.assert_array_equal(loaded.layers[layer.name].g_idx, np.arange(128) // 32)
    _write_config(tmp_path, bits=4, group_size=32, desc_act=True)
    with pytest.raises(GPTQFormatError, match=r"no tensor\(s\) .*\.g_idx"):
        load_gptq_checkpoint(tmp_path)


def test_bf16_plain_tensor_reads_as_float32(tmp_path):
    layers, _ = _model(layers=1)
    save_gptq_checkpoint(tmp_path / "ck", layers, layers[0].config)
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    _write_raw_safetensors(
        tmp_path / "ck" / "extra.safetensors", {"lm_head.weight": ("BF16", [3], raw)}
    )
    loaded = load_gptq_checkpoint(tmp_path / "ck")
    np.testing.assert_array_equal(loaded.tensors["lm_head.weight"], values)
    rows = {r["name"]: r for r in describe_checkpoint(tmp_path / "ck")}
    assert rows["lm_head.weight"]["encoding"] == "bfloat16"
    assert rows["lm_head.weight"]["nbytes"] == 6


def test_describe_checkpoint(tmp_path):
    layers, extra = _model(bits=4, group_size=32, desc_act=True, fmt="gptq_v2")
    save_gptq_checkpoint(tmp_path, layers, layers[0].config, "gptq_v2", extra, max_shard_bytes=9000)
    rows = describe_checkpoint(tmp_path)
    assert [r["name"] for r in rows] == [
        "model.embed_tokens.weight",
        "model.layers.0.mlp.up_proj",
        "model.layers.1.mlp.up_proj",
        "model.layers.2.mlp.up_proj",
        "model.norm.weight",
        "model.rotary.position_ids",
    ]
    by_name = {r["name"]: r for r in rows}
    first = by_name["model.layers.0.mlp.up_proj"]
    assert first["encoding"] == "gptq4 g32 act-order v2"
    assert first["shape"] == [64, 128] and first["dtype"] == "int32"
    assert first["nbytes"] == layers[0].nbytes
    assert by_name["model.norm.weight"] == {
        "name": "model.norm.weight",
        "encoding": "float32",
        "shape": [128],
        "dtype": "float32",
        "nbytes": 512,
        "files": by_name["model.norm.weight"]["files"],
    }
    # A plain safetensors file needs no GPTQ config.
    plain = tmp_path / "plain"
    plain.mkdir()
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((2, 3), dtype=np.float16)}, plain / "m.safetensors")
    (plain / "config.json").write_text("{broken")  # not read: nothing needs it
    assert describe_checkpoint(plain / "m.safetensors")[0]["encoding"] == "float16"


def test_layers_sorted_naturally(tmp_path):
    rng = np.random.default_rng(0)
    layers = [
        quantize_gptq_rtn(rng.standard_normal((32, 64)), 4, 32, name=f"model.layers.{i}.q")
        for i in (10, 2, 1)
    ]
    save_gptq_checkpoint(tmp_path, layers, layers[0].config)
    assert list(load_gptq_checkpoint(tmp_path).layers) == [
        "model.layers.1.q",
        "model.layers.2.q",
        "model.layers.10.q",
    ]


# -- loader errors --------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    layers, extra = _model(layers=2)
    save_gptq_checkpoint(tmp_path, layers, layers[0].config, "gptq", extra)
    return tmp_path, layers


@pytest.mark.parametrize(
    "config, match",
    [
        ({"bits": 5, "group_size": 32}, "bits must be one of"),
        ({"bits": 4}, "no 'group_size' field"),
        ({"bits": 4, "group_size": 32, "quant_method": "awq"}, "quant_method must be 'gptq'"),
        ({"bits": 4, "group_size": 32, "desc_act": "no"}, "desc_act must be a bool"),
        ({"bits": True, "group_size": 32}, "bits"),
        ({"bits": 4, "group_size": 32, "checkpoint_format": "marlin"}, "checkpoint_format"),
        ({"bits": 4, "group_size": 32, "is_marlin_format": True}, "Marlin"),
        ({"bits": 4, "group_size": 32, "pack_dtype": "int16"}, "pack_dtype"),
        ({"bits": 4, "group_size": 32, "dynamic": {"-:.*": {}}}, "dynamic"),
        ({"bits": 4, "group_size": 64}, r"qzeros must be int32 \[2, 8\].*got int32 \[4, 8\]"),
        ({"bits": 8, "group_size": 32}, r"K=64, N=64, bits=8.*got int32 \[4, 8\]"),
    ],
)
def test_bad_config_values(checkpoint, config, match):
    directory, _ = checkpoint
    _write_config(directory, **config)
    with pytest.raises(GPTQFormatError, match=match) as info:
        load_gptq_checkpoint(directory)
    assert str(directory) in str(info.value)


def test_config_file_problems(checkpoint):
    directory, _ = checkpoint
    (directory / "quantize_config.json").unlink()
    with pytest.raises(GPTQFormatError, match="no GPTQ config found"):
        load_gptq_checkpoint(directory)
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(GPTQFormatError, match="no GPTQ config found"):
        load_gptq_checkpoint(directory)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(GPTQFormatError, match="config.json: not valid JSON"):
        load_gptq_checkpoint(directory)
    (directory / "config.json").write_text(json.dumps({"quantization_config": [4]}))
    with pytest.raises(GPTQFormatError, match="must be a JSON object"):
        load_gptq_checkpoint(directory)
    # Both files, disagreeing.
    (directory / "config.json").write_text(
        json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": 32}})
    )
    _write_config(directory, bits=4, group_size=32)
    with pytest.raises(GPTQFormatError, match="disagree on bits: 4 vs 8"):
        load_gptq_checkpoint(directory)


def test_layer_tensor_problems(tmp_path):
    layer = _model(layers=1)[0][0]
    from safetensors.numpy import save_file

    def write(**tensors):
        save_file(tensors, tmp_path / "model.safetensors")
        _write_config(tmp_path, bits=4, group_size=32)

    p = layer.name
    base = {f"{p}.{t}": getattr(layer, t) for t in ("qweight", "qzeros", "scales", "g_idx")}
    write(**{k: v for k, v in base.items() if not k.endswith("scales")})
    missing = rf"model.safetensors: GPTQ layer '{p}' has no tensor\(s\) {p}.scales"
    with pytest.raises(GPTQFormatError, match=missing):
        load_gptq_checkpoint(tmp_path)
    write(**{f"{p}.qzeros": layer.qzeros})
    with pytest.raises(GPTQFormatError, match="has no tensor.*qweight.*scales"):
        load_gptq_checkpoint(tmp_path)
    write(**(base | {f"{p}.scales": layer.scales.astype(np.float32)}))
    with pytest.raises(GPTQFormatError, match=rf"'{p}': scales must be float16 \[4, 64\].*float32"):
        load_gptq_checkpoint(tmp_path)
    write(**(base | {f"{p}.qweight": layer.qweight[:8]}))
    with pytest.raises(GPTQFormatError, match=r"qzeros must be int32 \[2, 8\]"):
        load_gptq_checkpoint(tmp_path)
    write(**(base | {f"{p}.g_idx": layer.g_idx[::-1].copy()}))
    with pytest.raises(GPTQFormatError, match="model.safetensors: GPTQ layer.*desc_act is False"):
        load_gptq_checkpoint(tmp_path)
    # BF16 scales: a format error, not numpy's TypeError.
    _write_raw_safetensors(
        tmp_path / "model.safetensors",
        {
            f"{p}.qweight": ("I32", [16, 64], layer.qweight.tobytes()),
            f"{p}.qzeros": ("I32", [4, 8], layer.qzeros.tobytes()),
            f"{p}.scales": ("BF16", [4, 64], layer.scales.tobytes()),
            f"{p}.g_idx": ("I32", [128], layer.g_idx.tobytes()),
        },
    )
    with pytest.raises(GPTQFormatError, match="scales must be float16.*got bfloat16"):
        load_gptq_checkpoint(tmp_path)
    # Only plain tensors.
    write(w=np.zeros(3, dtype=np.float32))
    with pytest.raises(GPTQFormatError, match="no GPTQ layers"):
        load_gptq_checkpoint(tmp_path)


def test_file_problems(checkpoint, tmp_path_factory):
    directory, _ = checkpoint
    with pytest.raises(GPTQFormatError, match="no such file or directory"):
        load_gptq_checkpoint(directory / "absent")
    with pytest.raises(GPTQFormatError, match="expected a .safetensors file"):
        load_gptq_checkpoint(directory / "quantize_config.json")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(GPTQFormatError, match=r"no \*.safetensors files"):
        load_gptq_checkpoint(empty)
    # The same tensor in two files.
    from safetensors.numpy import save_file

    save_file({"model.norm.weight": np.ones(2, dtype=np.float32)}, directory / "z.safetensors")
    with pytest.raises(GPTQFormatError, match="'model.norm.weight' is stored twice"):
        load_gptq_checkpoint(directory)
    # A truncated file.
    data = (directory / "model.safetensors").read_bytes()
    (directory / "z.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(GPTQFormatError, match="z.safetensors: not a readable safetensors file"):
        load_gptq_checkpoint(directory)
    (directory / "z.safetensors").write_bytes(b"\x01")
    with pytest.raises(GPTQFormatError, match="not a readable safetensors file"):
        describe_checkpoint(directory)


def test_shard_index_problems(tmp_path):
    layers, extra = _model(layers=3)
    save_gptq_checkpoint(tmp_path, layers, layers[0].config, "gptq", extra, max_shard_bytes=9000)
    index_path = tmp_path / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())

    def expect(new_index, match):
        index_path.write_text(json.dumps(new_index))
        with pytest.raises(GPTQFormatError, match=match):
            load_gptq_checkpoint(tmp_path)

    name = next(iter(index["weight_map"]))
    weight_map = index["weight_map"]
    expect({"weight_map": weight_map | {name: "gone.safetensors"}}, "'gone.safetensors' is missing")
    expect({"weight_map": weight_map | {name: "../x.safetensors"}}, "not a plain file name")
    shard = index["weight_map"][name]
    expect({"weight_map": weight_map | {"absent.weight": shard}}, "maps tensor 'absent.weight'")
    expect({"nothing": 1}, "weight_map")
    index_path.write_text("[")
    with pytest.raises(GPTQFormatError, match="cannot read the shard index"):
        load_gptq_checkpoint(tmp_path)
    index_path.write_text(json.dumps(index))
    (tmp_path / "other.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(GPTQFormatError, match="several shard indexes"):
        load_gptq_checkpoint(tmp_path)


def test_lazy_plain_tensors(checkpoint):
    directory, _ = checkpoint
    loaded = load_gptq_checkpoint(directory)
    assert "model.norm.weight" in loaded.tensors and len(loaded.tensors) == 3
    with pytest.raises(KeyError):
        loaded.tensors["nope"]
    with pytest.raises(KeyError, match="no GPTQ layer 'nope'"):
        loaded.layer("nope")


# -- save errors ---------------------------------------------------------------------------


def test_save_rejects_bad_input(tmp_path):
    layers, extra = _model(layers=2)
    cfg = layers[0].config
    other = quantize_gptq_rtn(np.zeros((32, 64)), 8, 32, name="x")
    cases = [
        ({"layers": [*layers, other]}, "one config covers every layer"),
        ({"layers": [layers[0], layers[0]]}, "two layers are named"),
        ({"layers": []}, "no layers"),
        ({"layers": ["x"]}, "must be GPTQLinear"),
        ({"checkpoint_format": "gptq_v2"}, "one config covers every layer"),
        ({"checkpoint_format": "v9"}, "checkpoint_format"),
        ({"extra_tensors": {f"{layers[0].name}.bias": np.zeros(1)}}, "collides"),
        ({"extra_tensors": {"t": [1, 2]}}, "must be a numpy array"),
        ({"extra_tensors": {"x.qzeros": np.zeros(1)}}, "read back as part of a GPTQ layer"),
        ({"config_file": "quant.json"}, "config_file"),
        ({"max_shard_bytes": 0}, "max_shard_bytes"),
    ]
    for change, match in cases:
        args = {
            "directory": tmp_path / "out",
            "layers": layers,
            "config": cfg,
            "checkpoint_format": "gptq",
            "extra_tensors": extra,
        } | change
        with pytest.raises(GPTQFormatError, match=match):
            save_gptq_checkpoint(**args)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # A directory holding another checkpoint's files.
    save_gptq_checkpoint(tmp_path / "out", layers, cfg, max_shard_bytes=9000)
    with pytest.raises(GPTQFormatError, match="already holds other checkpoint files"):
        save_gptq_checkpoint(tmp_path / "out", layers, cfg)


def test_save_failure_leaves_no_files(tmp_path, monkeypatch):
    layers, _ = _model(layers=3)
    calls = []

    def failing_save(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        Path(path).write_bytes(b"partial")

    monkeypatch.setattr(gptq.writer, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_gptq_checkpoint(tmp_path, layers, layers[0].config, max_shard_bytes=9000)
    assert list(tmp_path.iterdir()) == []
