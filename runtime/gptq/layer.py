"""One GPTQ-quantized linear layer: its stored tensors, their checks, and the
numpy reference dequantizer (the layout: docs/gptq.md).

With K = in_features, N = out_features, G = K / group_size (1 when
group_size is -1), a layer stores ``qweight`` int32 [K*bits/32, N],
``qzeros`` int32 [G, N*bits/32], ``scales`` float16 [G, N], ``g_idx`` int32
[K] and optionally ``bias`` float16 [N].
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from quantir.dialects.encoding import (
    GPTQ_TENSOR_NAMES,
    PackedLayoutError,
    QuantizationConfig,
    QuantizationEncoding,
    check_checkpoint_format,
    codes_per_run,
    packed_layout,
    zero_point_offset,
)
from quantir.dialects.errors import QuantirError
from quantir.dialects.weight import DeviceRef, DType, Weight
from quantir.runtime.buffers import dtype_problem
from quantir.runtime.gptq.packing import unpack_qweight, unpack_qzeros

__all__ = [
    "GPTQ_TENSOR_NAMES",
    "GPTQFormatError",
    "GPTQLinear",
    "dequantize_gptq_reference",
    "expected_tensor_specs",
]

# Stored tensors of a layer, in the operand order the compiler uses; "bias"
# is optional and follows them.


class GPTQFormatError(ValueError, QuantirError):
    """A GPTQ checkpoint, config or layer does not match the format.

    The message names the file and/or layer, the tensor or field, and what
    was expected.
    """


def expected_tensor_specs(
    in_features: int, out_features: int, config: QuantizationConfig
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each stored tensor of a K x N layer (bias included).

    Raises ValueError when K or N cannot be packed with ``config.bits`` or
    group_size does not divide K.
    """
    k, n = in_features, out_features
    try:
        layout = packed_layout(QuantizationEncoding.GPTQ, config, n, k)
    except PackedLayoutError as e:
        if e.axis == "group_size":
            raise
        # The loader's wording: runs of codes, and which feature count it is.
        along_k = e.axis == "K"
        tensor, feature = ("qweight", "in_features") if along_k else ("qzeros", "out_features")
        raise ValueError(
            f"{config.bits}-bit {tensor} packs {e.axis} in runs of {e.multiple} codes: "
            f"{feature} {e.axis}={e.size} is not a multiple of {e.multiple}"
        ) from None
    specs = {p.name: (p.shape, np.dtype(p.dtype)) for p in layout}
    specs["bias"] = ((n,), np.dtype(np.float16))
    return specs  # type: ignore[return-value]


@dataclass(eq=False)
class GPTQLinear:
    """A GPTQ linear layer (y = x @ W.T + bias with W the logical [N, K] weight).

    ``name`` is the layer prefix in the checkpoint ("model.layers.0.mlp.down_proj";
    its tensors are "<name>.qweight" etc.). ``checkpoint_format`` says how the
    stored zero points are read: "gptq" (v1: real zero = stored + 1) or
    "gptq_v2" (real zero = stored). Construction validates every tensor and
    raises :class:`GPTQFormatError`; call :meth:`validate` again after mutating
    the arrays.
    """

    name: str
    qweight: np.ndarray
    qzeros: np.ndarray
    scales: np.ndarray
    g_idx: np.ndarray
    bias: np.ndarray | None
    config: QuantizationConfig
    checkpoint_format: str = "gptq"

    def __post_init__(self) -> None:
        self.validate()

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"GPTQLinear(name={self.name!r}, shape=[N={self.out_features}, "
            f"K={self.in_features}], bits={cfg.bits}, group_size={cfg.group_size}, "
            f"desc_act={cfg.desc_act}, sym={cfg.sym}, "
            f"checkpoint_format={self.checkpoint_format!r}, bias={self.bias is not None})"
        )

    # -- shape --------------------------------------------------------------

    @property
    def in_features(self) -> int:
        """K: the number of input features (qweight rows * 32 / bits)."""
        k = self.config.in_features_of(self.qweight.shape[0])
        assert k is not None, "validate() checks qweight's rows are whole runs"
        return k

    @property
    def out_features(self) -> int:
        """N: the number of output features (qweight columns)."""
        return self.qweight.shape[1]

    @property
    def logical_shape(self) -> tuple[int, int]:
        """The [N, K] shape of the dequantized weight (rows are output features)."""
        return (self.out_features, self.in_features)

    @property
    def num_groups(self) -> int:
        return self.config.num_groups(self.in_features)

    @property
    def group_size(self) -> int:
        """The group length along K (K itself when config.group_size is -1)."""
        return self.config.effective_group_size(self.in_features)

    @property
    def nbytes(self) -> int:
        """Stored bytes of all tensors, bias included."""
        arrays = [*self.tensors(), *([self.bias] if self.bias is not None else [])]
        return sum(a.nbytes for a in arrays)

    def tensors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(qweight, qzeros, scales, g_idx): the compiler's operand order."""
        return (self.qweight, self.qzeros, self.scales, self.g_idx)

    def zero_points(self) -> np.ndarray:
        """The real zero points z [G, N] (int32) of the dequantization formula."""
        stored = unpack_qzeros(self.qzeros, self.config.bits)
        return stored + np.int32(zero_point_offset(self.checkpoint_format))

    def to_weight(self, device: DeviceRef | None = None) -> Weight:
        """The quantir ``Weight`` declaring this layer (logical [N, K], GPTQ-encoded)."""
        return Weight(
            name=self.name,
            dtype=DType.int32,
            shape=list(self.logical_shape),
            device=device,
            quantization_encoding=QuantizationEncoding.GPTQ,
            quantization_config=self.config,
        )

    # -- checks -------------------------------------------------------------

    def _fail(self, message: str) -> GPTQFormatError:
        return GPTQFormatError(f"GPTQ layer {self.name!r}: {message}")

    def validate(self) -> None:
        """Check every dtype, shape and g_idx value against the config (docs/gptq.md)."""
        if not isinstance(self.name, str) or not self.name:
            raise GPTQFormatError(f"GPTQ layer name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.config, QuantizationConfig):
            raise self._fail(f"config must be a QuantizationConfig, got {self.config!r}")
        try:
            check_checkpoint_format(self.checkpoint_format)
        except ValueError as e:
            raise self._fail(str(e)) from None
        bits = self.config.bits
        arrays = {t: getattr(self, t) for t in (*GPTQ_TENSOR_NAMES, "bias")}
        for tname, arr in arrays.items():
            if arr is None and tname == "bias":
                continue
            if not isinstance(arr, np.ndarray):
                raise self._fail(f"{tname} must be a numpy array, got {type(arr).__name__}")
        qweight = self.qweight
        if qweight.ndim != 2 or qweight.shape[0] == 0 or qweight.shape[1] == 0:
            raise self._fail(
                f"qweight must be a non-empty 2-D int32 array [K*{bits}/32, N], "
                f"got shape {list(qweight.shape)}"
            )
        rows, n = qweight.shape
        k = self.config.in_features_of(rows)
        if k is None:
            _, run_words = codes_per_run(bits)
            raise self._fail(
                f"qweight has {rows} rows; {bits}-bit qweight has a multiple of "
                f"{run_words} rows (K*{bits}/32 with K a multiple of 32)"
            )
        try:
            specs = expected_tensor_specs(k, n, self.config)
        except ValueError as e:
            raise self._fail(f"{e} (qweight shape {list(qweight.shape)})") from None
        for tname, arr in arrays.items():
            if arr is None:
                continue
            shape, dtype = specs[tname]
            if arr.dtype.name != dtype.name or arr.shape != shape:
                raise self._fail(
                    f"{tname} must be {dtype.name} {list(shape)} "
                    f"(K={k}, N={n}, bits={bits}, group_size={self.config.group_size}), "
                    f"got {arr.dtype.name} {list(arr.shape)}"
                )
            byte_order = dtype_problem(arr.dtype, (dtype.name,))
            if byte_order is not None:
                raise self._fail(f"{tname}: {byte_order}")
        self._check_g_idx(k)

    def _check_g_idx(self, k: int) -> None:
        problem = g_idx_problem(self.g_idx, self.config, k)
        if problem is not None:
            raise self._fail(problem)


def g_idx_problem(g_idx: np.ndarray, config: QuantizationConfig, k: int) -> str | None:
    """What is wrong with a g_idx of length K (a group per k; k // group_size
    without desc_act), or None."""
    if not config.desc_act and np.array_equal(
        g_idx, _sequential_g_idx(k, config.effective_group_size(k))
    ):
        return None  # the common case, in one pass
    groups = config.num_groups(k)
    bad = np.flatnonzero((g_idx < 0) | (g_idx >= groups))
    if bad.size:
        i = int(bad[0])
        return (
            f"g_idx values must lie in [0, {groups}) (G = number of groups); "
            f"g_idx[{i}] = {int(g_idx[i])} ({bad.size} out of range)"
        )
    if config.desc_act:
        return None
    group_size = config.effective_group_size(k)
    expected = _sequential_g_idx(k, group_size)
    wrong = np.flatnonzero(g_idx != expected)
    if not wrong.size:
        return None
    i = int(wrong[0])
    return (
        f"desc_act is False, so g_idx[k] must equal k // group_size ({group_size}); "
        f"g_idx[{i}] = {int(g_idx[i])}, expected {int(expected[i])} ({wrong.size} of {k} "
        "differ; is this an act-order checkpoint with desc_act missing from its config?)"
    )


@functools.lru_cache(maxsize=64)
def _sequential_g_idx(k: int, group_size: int) -> np.ndarray:
    """k // group_size for k in range(K): the g_idx of a layer without act-order
    (read-only; kept, since every call checks a layer's g_idx against it)."""
    expected = np.arange(k, dtype=np.int64) // group_size
    expected.flags.writeable = False
    return expected


def dequantize_gptq_reference(layer: GPTQLinear) -> np.ndarray:
    """The dequantized weight of ``layer`` as float32 [N, K] (rows = output features).

    Evaluation order (the contract for bit-exact comparison): for each (k, n)
    with g = g_idx[k],

        d = q[k, n] - z[g, n]            as an integer (int32),
        w[n, k] = float32(scales[g, n]) * float32(d)   one float32 multiply,

    where q is the unpacked code, z the stored zero plus
    ``zero_point_offset(checkpoint_format)`` and float32(scales) the exact
    float32 value of the fp16 scale. The bias is not applied.
    """
    if not isinstance(layer, GPTQLinear):
        raise TypeError(f"dequantize_gptq_reference needs a GPTQLinear, got {type(layer).__name__}")
    q = unpack_qweight(layer.qweight, layer.config.bits)  # [K, N]
    z = layer.zero_points()  # [G, N]
    g_idx = layer.g_idx.astype(np.intp)
    diff = (q - z[g_idx]).astype(np.float32)  # exact: |q - z| < 2**9
    w = layer.scales.astype(np.float32)[g_idx] * diff  # [K, N]
    return np.ascontiguousarray(w.T)
