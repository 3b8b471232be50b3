"""Graph ops: each call checks its operands and appends one op to their graph.

Mirrors the reference graph API's ops (qmatmul, dequantize, matmul, add,
mul), plus gather (rows of a quantized table by index). Shape and dtype
errors are ValueError and name the op, the operand and what was expected;
an operand that is not a TensorValue is a TypeError.
"""

from __future__ import annotations

from collections.abc import Sequence

from quantir.compiler.graph.symbolic_shapes import broadcast_shapes, require_equal, require_static
from quantir.compiler.graph.types import Dim, TensorType, format_shape
from quantir.compiler.graph.value import TensorValue
from quantir.dialects.encoding import (
    GPTQ_TENSOR_NAMES,
    PackedLayoutError,
    QuantizationConfig,
    QuantizationEncoding,
    check_checkpoint_format,
    packed_layout,
)
from quantir.dialects.qnn import AddOp, MatmulOp, MulOp
from quantir.dialects.quant import DequantizeOp, GatherOp, GPTQConfigAttr, QMatmulOp
from quantir.dialects.weight import DType

__all__ = ["add", "dequantize", "gather", "matmul", "mul", "qmatmul"]


def _graph_of(what: str, *values: object):
    for i, v in enumerate(values):
        if not isinstance(v, TensorValue):
            raise TypeError(
                f"{what}: operand {i} must be a TensorValue of a graph, got {type(v).__name__}"
            )
    graph = values[0].graph  # type: ignore[union-attr]
    for v in values[1:]:
        if v.graph is not graph:  # type: ignore[union-attr]
            raise ValueError(
                f"{what}: operands come from different graphs ({graph.name!r} and {v.graph.name!r})"  # type: ignore[union-attr]
            )
    graph._check_open(what)
    return graph


def _describe(v: TensorValue) -> str:
    return f"{v.dtype.name} {format_shape(v.shape)}"


def _require_float32(what: str, name: str, v: TensorValue) -> None:
    if v.dtype is not DType.float32:
        hint = ""
        if v.dtype in (DType.uint8, DType.int8, DType.int32) and v.rank == 2:
            hint = " (a packed quantized weight? use ops.qmatmul or ops.dequantize)"
        raise ValueError(f"{what}: {name} must be float32, got {_describe(v)}{hint}")


def _check_weight_use(what: str, encoding: QuantizationEncoding, values: Sequence[TensorValue]):
    """Packed values that came from add_weight must be used with their declared encoding."""
    for v in values:
        origin = v.weight_origin
        if origin is not None and origin.encoding is not encoding:
            declared = origin.encoding.value if origin.encoding is not None else "a float weight"
            raise ValueError(
                f"{what}: weight {origin.name!r} is declared {declared}, not {encoding.value}"
            )


def _gguf_packed(what: str, encoding: QuantizationEncoding, packed: TensorValue) -> tuple[Dim, int]:
    """(N, K) of a GGUF packed weight value [N, K / elements_per_block * block_size]."""
    if packed.dtype not in (DType.uint8, DType.int8):
        hint = " (a float weight? use ops.matmul)" if packed.dtype is DType.float32 else ""
        raise ValueError(
            f"{what}: the packed weight must be uint8 bytes [N, row_bytes], "
            f"got {_describe(packed)}{hint}"
        )
    if packed.rank != 2:
        raise ValueError(
            f"{what}: the packed weight must be 2-D [N, row_bytes], got {_describe(packed)}"
        )
    _check_weight_use(what, encoding, [packed])
    row_bytes = require_static(what, packed.shape[1], "the packed weight's row length (bytes)")
    k = encoding.row_elements(row_bytes)
    if k is None:
        raise ValueError(
            f"{what}: packed rows of {row_bytes} bytes are not a whole number of "
            f"{encoding.block_size}-byte {encoding.value} blocks"
        )
    return packed.shape[0], k


def _gptq_packed(
    what: str,
    config: object,
    parts: Sequence[TensorValue],
    k: int | None,
    checkpoint_format: str | None,
) -> tuple[GPTQConfigAttr, Dim, int]:
    """(config attribute, N, K) of GPTQ's four tensors; K from lhs when given."""
    if config is None:
        raise ValueError(
            f"{what}: GPTQ needs config=QuantizationConfig(...) (bits, group_size, desc_act, sym)"
        )
    if not isinstance(config, QuantizationConfig):
        raise TypeError(f"{what}: config must be a QuantizationConfig, got {config!r}")
    if len(parts) != 4:
        raise ValueError(
            f"{what}: GPTQ takes four packed tensors ({', '.join(GPTQ_TENSOR_NAMES)}), "
            f"got {len(parts)}"
        )
    origins = [p.weight_origin for p in parts]
    names = {o.name for o in origins if o is not None}
    if len(names) > 1:
        raise ValueError(
            f"{what}: the four GPTQ tensors come from different weights "
            f"({', '.join(sorted(names))})"
        )
    _check_weight_use(what, QuantizationEncoding.GPTQ, parts)
    for expected, o in zip(GPTQ_TENSOR_NAMES, origins, strict=True):
        if o is not None and o.part != expected:
            raise ValueError(
                f"{what}: GPTQ tensors go in the order {', '.join(GPTQ_TENSOR_NAMES)}; got weight "
                f"{o.name!r}'s {o.part} where {expected} belongs"
            )
    declared = next((o for o in origins if o is not None), None)
    if declared is not None:
        if declared.config != config:
            raise ValueError(
                f"{what}: config {config} differs from the one weight {declared.name!r} was "
                f"declared with ({declared.config})"
            )
        if checkpoint_format is None:
            checkpoint_format = declared.checkpoint_format
        elif checkpoint_format != declared.checkpoint_format:
            raise ValueError(
                f"{what}: checkpoint_format {checkpoint_format!r} differs from weight "
                f"{declared.name!r}'s ({declared.checkpoint_format!r})"
            )
    fmt = check_checkpoint_format(checkpoint_format or "gptq")

    qweight, qzeros, scales, g_idx = parts
    wanted = {
        "qweight": (DType.int32, 2),
        "qzeros": (DType.int32, 2),
        "scales": (DType.float16, 2),
        "g_idx": (DType.int32, 1),
    }
    for name, v in zip(GPTQ_TENSOR_NAMES, parts, strict=True):
        dtype, rank = wanted[name]
        if v.dtype is not dtype or v.rank != rank:
            raise ValueError(
                f"{what}: GPTQ {name} must be {dtype.name} with {rank} dimension(s), "
                f"got {_describe(v)}"
            )
    k_g = require_static(what, g_idx.shape[0], "g_idx's length (K)")
    if k is None:
        k = k_g
    else:
        require_equal(what, k, k_g, "K (the last dimension of lhs)", "g_idx's length")
    n = qweight.shape[1]
    try:
        layout = packed_layout(
            QuantizationEncoding.GPTQ, config, n if isinstance(n, int) else None, k
        )
    except PackedLayoutError as e:
        raise ValueError(f"{what}: {e}") from None
    (qweight_rows, _), (groups, zero_cols), _, _ = (p.shape for p in layout)
    bits = config.bits
    require_equal(what, qweight.shape[0], qweight_rows, "qweight's rows", f"K*{bits}/32")
    require_equal(what, qzeros.shape[0], groups, "qzeros' rows", "the number of groups")
    require_equal(what, scales.shape[0], groups, "scales' rows", "the number of groups")
    require_equal(what, scales.shape[1], n, "scales' columns", "qweight's columns (N)")
    if zero_cols is not None:
        require_equal(what, qzeros.shape[1], zero_cols, "qzeros' columns", f"N*{bits}/32")
    return GPTQConfigAttr.get(config, fmt), n, k


def qmatmul(
    encoding: QuantizationEncoding | str,
    config: QuantizationConfig | None,
    lhs: TensorValue,
    *rhs: TensorValue,
    checkpoint_format: str | None = None,
) -> TensorValue:
    """``lhs @ dequantize(rhs).T``: lhs float32 [..., K], result [..., N].

    GGUF encodings: ``rhs`` is the packed uint8 weight [N, K / elements_per_block
    * block_size] and ``config`` must be None. GPTQ: ``rhs`` is (qweight,
    qzeros, scales, g_idx) and ``config`` is required; ``checkpoint_format``
    defaults to the weight's declaration (else "gptq").
    """
    enc = QuantizationEncoding.parse(encoding)
    what = f"ops.qmatmul({enc.name})"
    graph = _graph_of(what, lhs, *rhs)
    _require_float32(what, "lhs", lhs)
    if lhs.rank < 1:
        raise ValueError(f"{what}: lhs must be [..., K], got a scalar")
    k = require_static(what, lhs.shape[-1], "K (the last dimension of lhs)")
    if enc.is_gguf:
        if config is not None:
            raise ValueError(f"{what}: {enc.value} takes no config (config is for GPTQ)")
        if len(rhs) != 1:
            raise ValueError(f"{what}: {enc.value} takes one packed weight operand, got {len(rhs)}")
        n, k_w = _gguf_packed(what, enc, rhs[0])
        try:
            enc.packed_row_bytes(k)
        except PackedLayoutError:
            raise ValueError(
                f"{what}: {enc.value} packs K in blocks of {enc.elements_per_block}; lhs has "
                f"K={k}, not a multiple of {enc.elements_per_block}"
            ) from None
        if k_w != k:
            raise ValueError(
                f"{what}: lhs has K={k} but the packed weight {_describe(rhs[0])} holds rows "
                f"of K={k_w} ({k_w // enc.elements_per_block} blocks of "
                f"{enc.elements_per_block})"
            )
        config_attr = None
    else:
        config_attr, n, _ = _gptq_packed(what, config, rhs, k, checkpoint_format)
    result = TensorType(DType.float32, [*lhs.shape[:-1], n])
    op = QMatmulOp(
        enc, lhs.to_mlir(), [r.to_mlir() for r in rhs], result.to_mlir(), None, config_attr
    )
    return graph._append(op, result)


def dequantize(
    encoding: QuantizationEncoding | str,
    quantized: TensorValue | Sequence[TensorValue],
    config: QuantizationConfig | None = None,
    *,
    checkpoint_format: str | None = None,
) -> TensorValue:
    """The float32 [N, K] values of a packed weight.

    GGUF: ``quantized`` is the packed uint8 value. GPTQ: it is the sequence
    (qweight, qzeros, scales, g_idx) and ``config`` is required.
    """
    enc = QuantizationEncoding.parse(encoding)
    what = f"ops.dequantize({enc.name})"
    if enc.is_gguf:
        if config is not None:
            raise ValueError(f"{what}: {enc.value} takes no config (config is for GPTQ)")
        if not isinstance(quantized, TensorValue):
            raise TypeError(
                f"{what}: quantized must be the packed weight's TensorValue, "
                f"got {type(quantized).__name__}"
            )
        parts: list[TensorValue] = [quantized]
        graph = _graph_of(what, quantized)
        n, k = _gguf_packed(what, enc, quantized)
        config_attr = None
    else:
        if isinstance(quantized, TensorValue) or not isinstance(quantized, Sequence):
            raise TypeError(
                f"{what}: GPTQ quantized must be the four tensors (qweight, qzeros, scales, "
                f"g_idx), got {type(quantized).__name__}"
            )
        parts = list(quantized)
        graph = _graph_of(what, *parts)
        config_attr, n, k = _gptq_packed(what, config, parts, None, checkpoint_format)
    result = TensorType(DType.float32, [n, k])
    op = DequantizeOp(enc, [p.to_mlir() for p in parts], result.to_mlir(), None, config_attr)
    return graph._append(op, result)


def gather(
    encoding: QuantizationEncoding | str, table: TensorValue, indices: TensorValue
) -> TensorValue:
    """Rows ``indices`` of a packed GGUF table, dequantized: float32 [*indices.shape, K].

    ``table`` is the packed uint8 weight [N, K / elements_per_block *
    block_size] (a token embedding table); ``indices`` an int32 or int64
    tensor of row numbers, of any rank >= 1. The values are bit-identical to
    ggml's dequantization of those rows; an index outside [0, N) is an error
    when the graph runs. GPTQ tables are not supported.
    """
    enc = QuantizationEncoding.parse(encoding)
    what = f"ops.gather({enc.name})"
    if not enc.is_gguf:
        raise ValueError(
            f"{what}: GPTQ tables are not supported (gather reads rows of GGUF block-quantized "
            "tables)"
        )
    graph = _graph_of(what, table, indices)
    _, k = _gguf_packed(what, enc, table)
    if indices.dtype not in (DType.int32, DType.int64):
        raise ValueError(f"{what}: indices must be int32 or int64, got {_describe(indices)}")
    if indices.rank < 1:
        raise ValueError(f"{what}: indices must have rank 1 or more, got a scalar")
    result = TensorType(DType.float32, [*indices.shape, k])
    op = GatherOp(enc, table.to_mlir(), indices.to_mlir(), result.to_mlir())
    return graph._append(op, result)


def matmul(lhs: TensorValue, rhs: TensorValue) -> TensorValue:
    """Float matmul ``lhs @ rhs``: lhs float32 [..., K], rhs float32 [K, N] -> [..., N]."""
    what = "ops.matmul"
    graph = _graph_of(what, lhs, rhs)
    _require_float32(what, "lhs", lhs)
    _require_float32(what, "rhs", rhs)
    if lhs.rank < 1:
        raise ValueError(f"{what}: lhs must be [..., K], got a scalar")
    if rhs.rank != 2:
        raise ValueError(f"{what}: rhs must be 2-D [K, N], got {_describe(rhs)}")
    k = require_static(what, lhs.shape[-1], "K (the last dimension of lhs)")
    k_r = require_static(what, rhs.shape[0], "K (the first dimension of rhs)")
    if k != k_r:
        raise ValueError(
            f"{what}: lhs is {format_shape(lhs.shape)} but rhs is {format_shape(rhs.shape)}: "
            f"K must match ({k} != {k_r})"
        )
    result = TensorType(DType.float32, [*lhs.shape[:-1], rhs.shape[1]])
    return graph._append(MatmulOp(lhs.to_mlir(), rhs.to_mlir(), result.to_mlir()), result)


def _elementwise(what: str, op_class, a: TensorValue, b: TensorValue) -> TensorValue:
    graph = _graph_of(what, a, b)
    _require_float32(what, "lhs", a)
    _require_float32(what, "rhs", b)
    shape = broadcast_shapes(what, a.shape, b.shape)
    result = TensorType(DType.float32, shape)
    return graph._append(op_class(a.to_mlir(), b.to_mlir(), result.to_mlir()), result)


def add(lhs: TensorValue, rhs: TensorValue) -> TensorValue:
    """Elementwise ``lhs + rhs`` (float32) with trailing broadcasting."""
    return _elementwise("ops.add", AddOp, lhs, rhs)


def mul(lhs: TensorValue, rhs: TensorValue) -> TensorValue:
    """Elementwise ``lhs * rhs`` (float32) with trailing broadcasting."""
    return _elementwise("ops.mul", MulOp, lhs, rhs)
