"""Weights of a graph: element types, devices, and (packed) weight declarations.

``Weight`` describes a named weight the way a graph file does: its LOGICAL
shape ([N, K] for a linear layer: rows are output features), its storage
dtype and, for a quantized weight, its encoding. For a GGUF encoding the
packed storage is uint8 [N, K // elements_per_block * block_size], which is
also gguf-py's ``ReaderTensor.data`` shape. For GPTQ it is the checkpoint's
tensors (qweight, qzeros, scales, g_idx), whose shapes follow from the
QuantizationConfig.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quantir.dialects.encoding import (
    PackedLayoutError,
    QuantizationConfig,
    QuantizationEncoding,
    packed_layout,
)

__all__ = ["DType", "DeviceRef", "PackedTensor", "Weight"]


class DType(enum.Enum):
    """Element types of tensors (the names match numpy's)."""

    bool = "bool"
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    uint8 = "uint8"
    uint16 = "uint16"
    uint32 = "uint32"
    uint64 = "uint64"
    float16 = "float16"
    bfloat16 = "bfloat16"
    float32 = "float32"
    float64 = "float64"

    @property
    def size_in_bytes(self) -> int:
        return 2 if self is DType.bfloat16 else np.dtype(self.value).itemsize

    @property
    def is_float(self) -> bool:
        return self.value.startswith(("float", "bfloat"))

    def to_numpy(self) -> np.dtype:
        if self is DType.bfloat16:
            raise ValueError("numpy has no bfloat16 dtype")
        return np.dtype(self.value)

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> DType:
        name = np.dtype(dtype).name
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"numpy dtype {name} has no quantir DType") from None


@dataclass(frozen=True)
class DeviceRef:
    """A device a weight or computation lives on: ``DeviceRef.CPU()``, ``DeviceRef.GPU(0)``."""

    device_type: str
    id: int = 0

    def __post_init__(self) -> None:
        if self.device_type not in ("cpu", "gpu"):
            raise ValueError(
                f"DeviceRef.device_type must be 'cpu' or 'gpu', got {self.device_type!r}"
            )
        if type(self.id) is not int or self.id < 0:
            raise ValueError(f"DeviceRef.id must be a non-negative int, got {self.id!r}")

    @staticmethod
    def CPU(id: int = 0) -> DeviceRef:  # noqa: N802 (mirrors the reference API)
        return DeviceRef("cpu", id)

    @staticmethod
    def GPU(id: int = 0) -> DeviceRef:  # noqa: N802
        return DeviceRef("gpu", id)

    def is_cpu(self) -> bool:
        return self.device_type == "cpu"

    def is_gpu(self) -> bool:
        return self.device_type == "gpu"

    def __str__(self) -> str:
        return "cpu" if self.is_cpu() else f"cuda:{self.id}"


@dataclass(frozen=True)
class PackedTensor:
    """One stored tensor of a packed weight."""

    suffix: str
    """"" for GGUF (the weight itself), else the checkpoint name ("qweight", ...)."""
    shape: tuple[int, ...]
    dtype: DType


def _layout_error(weight: Weight, e: PackedLayoutError) -> ValueError:
    """The Weight API's wording of a packed-layout error (it names the weight and its shape)."""
    prefix = f"Weight {weight.name!r}"
    encoding, config = weight.quantization_encoding, weight.quantization_config
    if e.axis == "group_size":
        return ValueError(f"{prefix}: {e}")
    if encoding is not None and encoding.is_gguf:
        return ValueError(
            f"{prefix}: {encoding.name} packs K in blocks of {e.multiple} weights; "
            f"K={e.size} (shape {list(weight.shape)}) is not a multiple of {e.multiple}"
        )
    assert config is not None
    what = "K into 32-bit words" if e.axis == "K" else "zero points along N into 32-bit words"
    return ValueError(
        f"{prefix}: GPTQ {config.bits}-bit packs {what}: {e.axis}={e.size} times bits "
        "must be a multiple of 32"
    )


class Weight:
    """A named weight of a graph.

    ``shape`` is the logical shape; for an encoded weight it must be [N, K].
    """

    def __init__(
        self,
        name: str,
        dtype: DType,
        shape: Sequence[int],
        device: DeviceRef | None = None,
        quantization_encoding: QuantizationEncoding | None = None,
        quantization_config: QuantizationConfig | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Weight name must be a non-empty string, got {name!r}")
        if not isinstance(dtype, DType):
            raise ValueError(f"Weight {name!r}: dtype must be a DType, got {dtype!r}")
        shape = tuple(shape)
        if not shape or any(type(d) is not int and not isinstance(d, np.integer) for d in shape):
            raise ValueError(
                f"Weight {name!r}: shape must be a non-empty sequence of ints, got {list(shape)}"
            )
        shape = tuple(int(d) for d in shape)
        if any(d <= 0 for d in shape):
            raise ValueError(f"Weight {name!r}: dimensions must be positive, got {list(shape)}")
        device = device if device is not None else DeviceRef.CPU()
        if not isinstance(device, DeviceRef):
            raise ValueError(f"Weight {name!r}: device must be a DeviceRef, got {device!r}")
        encoding = quantization_encoding
        if encoding is not None and not isinstance(encoding, QuantizationEncoding):
            raise ValueError(
                f"Weight {name!r}: quantization_encoding must be a QuantizationEncoding, "
                f"got {encoding!r}"
            )
        if quantization_config is not None and not isinstance(
            quantization_config, QuantizationConfig
        ):
            raise ValueError(
                f"Weight {name!r}: quantization_config must be a QuantizationConfig, "
                f"got {quantization_config!r}"
            )

        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.device = device
        self.quantization_encoding = encoding
        self.quantization_config = quantization_config
        self._packed = self._check_packing()

    def _check_packing(self) -> tuple[PackedTensor, ...]:
        enc, name = self.quantization_encoding, self.name
        if enc is None:
            if self.quantization_config is not None:
                raise ValueError(
                    f"Weight {name!r}: a quantization_config needs quantization_encoding=GPTQ"
                )
            return (PackedTensor("", self.shape, self.dtype),)
        if len(self.shape) != 2:
            raise ValueError(
                f"Weight {name!r}: an encoded weight has a logical [N, K] shape, "
                f"got {list(self.shape)}"
            )
        n, k = self.shape
        if enc.is_gguf:
            if self.dtype is not DType.uint8:
                raise ValueError(
                    f"Weight {name!r}: {enc.name} weights are stored as uint8 bytes, "
                    f"got dtype {self.dtype.name}"
                )
            if self.quantization_config is not None:
                raise ValueError(
                    f"Weight {name!r}: {enc.name} takes no quantization_config (GPTQ only)"
                )
            return self._layout(n, k)
        # GPTQ: the stored tensors follow from the config.
        if self.quantization_config is None:
            raise ValueError(
                f"Weight {name!r}: GPTQ weights need a quantization_config "
                "(bits, group_size, desc_act, sym)"
            )
        if self.dtype is not DType.int32:
            raise ValueError(
                f"Weight {name!r}: GPTQ weights are stored as int32 words (qweight), "
                f"got dtype {self.dtype.name}"
            )
        return self._layout(n, k)

    def _layout(self, n: int, k: int) -> tuple[PackedTensor, ...]:
        assert self.quantization_encoding is not None
        try:
            layout = packed_layout(self.quantization_encoding, self.quantization_config, n, k)
        except PackedLayoutError as e:
            raise _layout_error(self, e) from None
        # N is known here, so every size in the layout is an int.
        return tuple(PackedTensor(p.name, p.shape, DType(p.dtype)) for p in layout)

    @property
    def packed_shape(self) -> tuple[int, ...]:
        """Shape of the stored data (the qweight tensor for GPTQ)."""
        return self._packed[0].shape

    @property
    def packed_tensors(self) -> tuple[PackedTensor, ...]:
        """Every stored tensor: one for GGUF and float weights, four for GPTQ."""
        return self._packed

    @property
    def packed_nbytes(self) -> int:
        return sum(int(np.prod(t.shape)) * t.dtype.size_in_bytes for t in self._packed)

    def __repr__(self) -> str:
        enc = self.quantization_encoding
        extra = f", quantization_encoding={enc}" if enc is not None else ""
        return (
            f"Weight(name={self.name!r}, dtype={self.dtype}, shape={list(self.shape)}, "
            f"device={self.device}{extra})"
        )
