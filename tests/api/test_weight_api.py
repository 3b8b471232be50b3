"""The public API of quantir.dialects.weight: Weight, DType and DeviceRef.

Packed GGUF shapes are cross-checked against gguf-py's
quant_shape_to_byte_shape (the shape of ReaderTensor.data), GPTQ shapes
against the checkpoint layout of docs/gptq.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType
from gguf.quants import quant_shape_to_byte_shape

from quantir.dialects.quant import (
    DeviceRef,
    DType,
    QuantizationConfig,
    QuantizationEncoding,
    Weight,
)
from quantir.dialects.weight import PackedTensor

E = QuantizationEncoding
GGUF = [e for e in E if e.is_gguf]


def test_the_spec_seed_example_runs_as_written() -> None:
    encoding = QuantizationEncoding.Q4_K
    w = Weight(
        name="linear.weight",
        dtype=DType.uint8,
        shape=[4096, 4096],
        device=DeviceRef.GPU(0),
        quantization_encoding=encoding,
    )
    assert w.name == "linear.weight"
    assert w.dtype is DType.uint8
    assert tuple(w.shape) == (4096, 4096)  # the LOGICAL [N, K] shape
    assert w.device == DeviceRef.GPU(0)
    assert w.quantization_encoding is QuantizationEncoding.Q4_K
    assert w.quantization_config is None
    # 4096 / 256 = 16 blocks of 144 bytes per row.
    assert w.packed_shape == (4096, 2304)
    assert w.packed_nbytes == 4096 * 2304


@pytest.mark.parametrize("encoding", GGUF, ids=lambda e: e.value)
@pytest.mark.parametrize("shape", [(1, 256), (7, 512), (4096, 4096), (32000, 2816)])
def test_packed_shape_matches_gguf_py(encoding: QuantizationEncoding, shape) -> None:
    n, k = shape
    w = Weight("w", DType.uint8, shape, quantization_encoding=encoding)
    expected = quant_shape_to_byte_shape(shape, GGMLQuantizationType[encoding.value])
    assert w.packed_shape == tuple(expected)
    assert w.packed_tensors == (PackedTensor("", tuple(expected), DType.uint8),)
    assert w.packed_nbytes == n * expected[1]


@pytest.mark.parametrize("encoding", GGUF, ids=lambda e: e.value)
def test_k_not_a_multiple_of_the_block(encoding: QuantizationEncoding) -> None:
    epb = encoding.elements_per_block
    k = 8 * epb + 16
    with pytest.raises(ValueError) as info:
        Weight("blk.0.w", DType.uint8, [64, k], quantization_encoding=encoding)
    assert str(info.value) == (
        f"Weight 'blk.0.w': {encoding.name} packs K in blocks of {epb} weights; "
        f"K={k} (shape [64, {k}]) is not a multiple of {epb}"
    )


@pytest.mark.parametrize("encoding", GGUF, ids=lambda e: e.value)
@pytest.mark.parametrize("dtype", [d for d in DType if d is not DType.uint8], ids=str)
def test_gguf_weights_are_uint8(encoding: QuantizationEncoding, dtype: DType) -> None:
    with pytest.raises(ValueError) as info:
        Weight("w", dtype, [8, 256], quantization_encoding=encoding)
    assert str(info.value) == (
        f"Weight 'w': {encoding.name} weights are stored as uint8 bytes, got dtype {dtype.name}"
    )


@pytest.mark.parametrize("shape", [[4096], [2, 8, 256], [1, 1, 1, 256]])
def test_encoded_weights_are_two_dimensional(shape) -> None:
    with pytest.raises(ValueError, match=r"an encoded weight has a logical \[N, K\] shape"):
        Weight("w", DType.uint8, shape, quantization_encoding=E.Q4_0)


def test_gguf_takes_no_config() -> None:
    with pytest.raises(ValueError, match=r"q4_k takes no quantization_config \(GPTQ only\)"):
        Weight(
            "w",
            DType.uint8,
            [8, 256],
            quantization_encoding=E.Q4_K,
            quantization_config=QuantizationConfig("gptq", 4, 128),
        )


def test_a_config_needs_the_gptq_encoding() -> None:
    with pytest.raises(ValueError, match=r"a quantization_config needs quantization_encoding=GPTQ"):
        Weight("w", DType.float32, [8, 256], quantization_config=QuantizationConfig("gptq", 4, 128))


# --------------------------------------------------------------------------
# GPTQ
# --------------------------------------------------------------------------


def gptq_tensors(n: int, k: int, bits: int, group_size: int):
    """The checkpoint layout of docs/gptq.md, written out independently."""
    groups = 1 if group_size == -1 else k // group_size
    return (
        PackedTensor("qweight", (k * bits // 32, n), DType.int32),
        PackedTensor("qzeros", (groups, n * bits // 32), DType.int32),
        PackedTensor("scales", (groups, n), DType.float16),
        PackedTensor("g_idx", (k,), DType.int32),
    )


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group_size", [-1, 32, 128])
def test_gptq_packed_tensors(bits: int, group_size: int) -> None:
    n, k = 96, 512
    config = QuantizationConfig("gptq", bits, group_size, desc_act=True, sym=True)
    w = Weight(
        "layer.weight",
        DType.int32,
        [n, k],
        quantization_encoding=E.GPTQ,
        quantization_config=config,
    )
    assert w.packed_tensors == gptq_tensors(n, k, bits, group_size)
    assert w.packed_shape == (k * bits // 32, n)  # qweight
    assert w.packed_nbytes == sum(
        int(np.prod(t.shape)) * t.dtype.size_in_bytes for t in gptq_tensors(n, k, bits, group_size)
    )


def test_gptq_3_bit_example() -> None:
    # 3-bit packs 32 values into 3 words: K=4096 -> 384 rows of qweight.
    w = Weight(
        "w",
        DType.int32,
        [4096, 4096],
        quantization_encoding=E.GPTQ,
        quantization_config=QuantizationConfig("gptq", 3, 128),
    )
    assert [t.shape for t in w.packed_tensors] == [(384, 4096), (32, 384), (32, 4096), (4096,)]


def test_gptq_needs_a_config() -> None:
    with pytest.raises(ValueError, match=r"GPTQ weights need a quantization_config"):
        Weight("w", DType.int32, [64, 256], quantization_encoding=E.GPTQ)


@pytest.mark.parametrize("dtype", [DType.uint8, DType.float16, DType.int64])
def test_gptq_weights_are_int32(dtype: DType) -> None:
    message = rf"stored as int32 words \(qweight\), got dtype {dtype.name}"
    with pytest.raises(ValueError, match=message):
        Weight(
            "w",
            dtype,
            [64, 256],
            quantization_encoding=E.GPTQ,
            quantization_config=QuantizationConfig("gptq", 4, 128),
        )


def test_gptq_k_times_bits_fills_words() -> None:
    with pytest.raises(ValueError, match=r"Weight 'w': GPTQ 3-bit packs K into 32-bit words: K=48"):
        Weight(
            "w",
            DType.int32,
            [64, 48],
            quantization_encoding=E.GPTQ,
            quantization_config=QuantizationConfig("gptq", 3, -1),
        )


def test_gptq_n_times_bits_fills_words() -> None:
    with pytest.raises(ValueError, match=r"Weight 'w': GPTQ 4-bit packs zero points .* N=4"):
        Weight(
            "w",
            DType.int32,
            [4, 256],
            quantization_encoding=E.GPTQ,
            quantization_config=QuantizationConfig("gptq", 4, -1),
        )


def test_gptq_group_size_divides_k() -> None:
    with pytest.raises(ValueError, match=r"Weight 'w': GPTQ group_size 96 does not divide"):
        Weight(
            "w",
            DType.int32,
            [64, 256],
            quantization_encoding=E.GPTQ,
            quantization_config=QuantizationConfig("gptq", 4, 96),
        )


# --------------------------------------------------------------------------
# Float weights and argument checks
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [DType.float32, DType.float16, DType.bfloat16, DType.int8])
@pytest.mark.parametrize("shape", [(1024,), (64, 32), (2, 3, 4)])
def test_float_weights_are_stored_as_they_are(dtype: DType, shape) -> None:
    w = Weight("b", dtype, list(shape))
    assert w.quantization_encoding is None
    assert w.shape == shape
    assert w.packed_shape == shape
    assert w.packed_tensors == (PackedTensor("", shape, dtype),)
    assert w.packed_nbytes == int(np.prod(shape)) * dtype.size_in_bytes
    assert w.device == DeviceRef.CPU()  # the default


def test_numpy_integers_are_accepted_as_dimensions() -> None:
    w = Weight("w", DType.uint8, np.array([8, 512]), quantization_encoding=E.Q8_0)
    assert w.shape == (8, 512)
    assert all(type(d) is int for d in w.shape)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "Weight name must be a non-empty string, got ''"),
        ({"name": None}, "Weight name must be a non-empty string, got None"),
        ({"dtype": "uint8"}, "Weight 'w': dtype must be a DType, got 'uint8'"),
        ({"dtype": np.uint8}, "Weight 'w': dtype must be a DType"),
        ({"shape": []}, "Weight 'w': shape must be a non-empty sequence of ints, got []"),
        ({"shape": [8, 256.0]}, "Weight 'w': shape must be a non-empty sequence of ints"),
        ({"shape": [0, 256]}, "Weight 'w': dimensions must be positive, got [0, 256]"),
        ({"shape": [8, -256]}, "Weight 'w': dimensions must be positive, got [8, -256]"),
        ({"device": "gpu"}, "Weight 'w': device must be a DeviceRef, got 'gpu'"),
        (
            {"quantization_encoding": "q4_k"},
            "Weight 'w': quantization_encoding must be a QuantizationEncoding, got 'q4_k'",
        ),
        (
            {"quantization_config": {"bits": 4}},
            "Weight 'w': quantization_config must be a QuantizationConfig",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    args = {
        "name": "w",
        "dtype": DType.uint8,
        "shape": [8, 256],
        "quantization_encoding": E.Q4_K,
    } | kwargs
    with pytest.raises(ValueError) as info:
        Weight(**args)
    assert str(info.value).startswith(message)


def test_repr_names_the_weight() -> None:
    w = Weight("linear.weight", DType.uint8, [8, 256], DeviceRef.GPU(1), E.Q6_K)
    assert repr(w) == (
        "Weight(name='linear.weight', dtype=DType.uint8, shape=[8, 256], device=cuda:1, "
        "quantization_encoding=QuantizationEncoding.Q6_K)"
    )
    assert repr(Weight("b", DType.float32, [4])) == (
        "Weight(name='b', dtype=DType.float32, shape=[4], device=cpu)"
    )


# --------------------------------------------------------------------------
# DType
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d for d in DType if d is not DType.bfloat16], ids=str)
def test_dtype_matches_numpy(dtype: DType) -> None:
    assert dtype.name == dtype.value
    assert dtype.to_numpy() == np.dtype(dtype.value)
    assert DType.from_numpy(np.dtype(dtype.value)) is dtype
    assert DType.from_numpy(dtype.to_numpy().type) is dtype
    assert dtype.size_in_bytes == np.dtype(dtype.value).itemsize
    assert dtype.is_float == (np.dtype(dtype.value).kind == "f")


def test_bfloat16() -> None:
    assert DType.bfloat16.size_in_bytes == 2
    assert DType.bfloat16.is_float
    with pytest.raises(ValueError, match="numpy has no bfloat16 dtype"):
        DType.bfloat16.to_numpy()


@pytest.mark.parametrize("dtype", [np.complex64, np.dtype("U4"), object])
def test_numpy_dtypes_without_a_dtype(dtype) -> None:
    with pytest.raises(ValueError, match=r"numpy dtype .* has no quantir DType"):
        DType.from_numpy(dtype)


# --------------------------------------------------------------------------
# DeviceRef
# --------------------------------------------------------------------------


def test_device_ref() -> None:
    cpu, gpu0, gpu1 = DeviceRef.CPU(), DeviceRef.GPU(0), DeviceRef.GPU(1)
    assert (cpu.device_type, cpu.id) == ("cpu", 0)
    assert (gpu1.device_type, gpu1.id) == ("gpu", 1)
    assert DeviceRef.GPU() == gpu0
    assert cpu.is_cpu() and not cpu.is_gpu()
    assert gpu0.is_gpu() and not gpu0.is_cpu()
    assert (str(cpu), str(gpu0), str(gpu1)) == ("cpu", "cuda:0", "cuda:1")
    assert len({cpu, gpu0, gpu1, DeviceRef("gpu", 1)}) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu0.id = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tpu", 0), "DeviceRef.device_type must be 'cpu' or 'gpu', got 'tpu'"),
        (("GPU", 0), "DeviceRef.device_type must be 'cpu' or 'gpu', got 'GPU'"),
        (("gpu", -1), "DeviceRef.id must be a non-negative int, got -1"),
        (("gpu", 1.0), "DeviceRef.id must be a non-negative int, got 1.0"),
        (("gpu", True), "DeviceRef.id must be a non-negative int, got True"),
    ],
)
def test_bad_device_refs(args, message: str) -> None:
    with pytest.raises(ValueError) as info:
        DeviceRef(*args)
    assert str(info.value) == message
