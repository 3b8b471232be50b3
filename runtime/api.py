"""Eager entry points: dequantize, qmatmul and gather on numpy arrays.

Each call builds a one-op graph for the operand shapes (rows N and the
leading dimensions of x stay dynamic, so they never force a recompile),
compiles it through the full pipeline (cached), checks every buffer and runs
it.

    y = qmatmul(QuantizationEncoding.Q4_K, x, w)           # x [..., K], w uint8 [N, K/256*144]
    w_f32 = dequantize("q4_k", w)                          # [N, K], bit-identical to ggml
    y = qmatmul("gptq", x, (qweight, qzeros, scales, g_idx), config=cfg)
    y = qmatmul(tensor, x)      # a GGUFTensor or GPTQLinear knows its own encoding
    w_f32 = dequantize(layer)   # (and config)
    rows = gather(token_embd, ids)                         # dequantize(token_embd)[ids]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from quantir.compiler.graph import Graph, ops
from quantir.compiler.graph.types import TensorType
from quantir.dialects.encoding import (
    GPTQ_TENSOR_NAMES,
    QuantizationConfig,
    QuantizationEncoding,
    check_checkpoint_format,
    packed_layout,
)
from quantir.dialects.weight import DType
from quantir.runtime.buffers import BufferError, dtype_problem, is_device_buffer
from quantir.runtime.compiled_graph import compile_on_device
from quantir.runtime.gptq.layer import GPTQLinear, g_idx_problem
from quantir.runtime.program import gather_weight_parts

if TYPE_CHECKING:
    from quantir.runtime.gguf import GGUFTensor

__all__ = ["dequantize", "eager_source", "gather", "qmatmul"]

Packed = np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]
"""A packed weight as arrays: GGUF's uint8 [N, row_bytes], GPTQ's four tensors."""


def _weight_kind(value: object) -> str | None:
    """Which weight object that knows its encoding `value` is ("GGUF tensor", ...), or None."""
    from quantir.runtime.gguf import GGUFTensor
    from quantir.runtime.gptq import GPTQLinear

    if isinstance(value, GGUFTensor):
        return "GGUF tensor"
    if isinstance(value, GPTQLinear):
        return "GPTQ layer"
    return None


def _own_encoding(
    encoding: object, packed: object, function: str
) -> tuple[QuantizationEncoding, object]:
    """(the encoding, the packed operand): a GGUFTensor or GPTQLinear brings its own.

    `function(weight, ...)` passes the weight object in the encoding's place;
    `function(encoding, ..., weight)` must name the weight's own encoding.
    """
    if packed is None:
        if _weight_kind(encoding) is None:
            raise TypeError(
                f"{function}: the packed weight is missing (pass a GGUFTensor or GPTQLinear, "
                f"or an encoding and the packed arrays)"
            )
        encoding, packed = None, encoding
    kind = _weight_kind(packed)
    if kind is None:
        if encoding is None:
            raise TypeError(f"{function}: an encoding is needed for packed arrays")
        return QuantizationEncoding.parse(encoding), packed
    if kind == "GGUF tensor":
        own = packed.encoding
        if own is None:
            raise ValueError(
                f"GGUF tensor {packed.name!r} is {packed.type_name}, not a quantized type "
                f"quantir supports (use its .data or .to_float32())"
            )
        what, arrays = f"GGUF tensor {packed.name!r}", packed.data
    else:
        own, what, arrays = QuantizationEncoding.GPTQ, f"GPTQ layer {packed.name!r}", packed
    if encoding is not None and QuantizationEncoding.parse(encoding) is not own:
        raise ValueError(
            f"encoding={QuantizationEncoding.parse(encoding).name!r} conflicts with the "
            f"encoding of {what}, {own.name!r}"
        )
    return own, arrays


def _is_array(value: object) -> bool:
    """A numpy array, or a GPU `DeviceBuffer` (resident weights: checked by their metadata)."""
    return isinstance(value, np.ndarray) or is_device_buffer(value)


def _gguf_k(enc: QuantizationEncoding, packed: object) -> tuple[np.ndarray, int]:
    if not _is_array(packed):
        raise BufferError(
            f"{enc.name} packed weight: expected a numpy uint8 array or a GPU buffer "
            f"(runtime.cuda.to_device), got {type(packed).__name__}"
        )
    if np.dtype(packed.dtype) not in (np.uint8, np.int8):
        raise BufferError(f"{enc.name} packed weight: expected dtype uint8, got {packed.dtype}")
    if len(packed.shape) != 2:
        raise BufferError(
            f"{enc.name} packed weight: expected 2 dimensions [N, K/{enc.elements_per_block}*"
            f"{enc.block_size}], got shape {list(packed.shape)}"
        )
    row_bytes = packed.shape[1]
    k = enc.row_elements(row_bytes)
    if not k:
        raise BufferError(
            f"{enc.name} packed weight: rows of {row_bytes} bytes are not a whole number of "
            f"{enc.block_size}-byte blocks"
        )
    return packed, k


def _gptq_config(
    packed: object, config: QuantizationConfig | None, checkpoint_format: str | None
) -> tuple[QuantizationConfig, str]:
    """The config and zero-point format: a GPTQLinear's own, else the arguments.

    Arguments that contradict the layer's own are an error (its tensors are
    packed one way only); without either, the format is "gptq" (v1).
    """
    own_config = getattr(packed, "config", None)
    if isinstance(own_config, QuantizationConfig):
        if config is not None and config != own_config:
            raise ValueError(f"GPTQ config={config} differs from the layer's own {own_config}")
        config = own_config
    if config is None:
        raise ValueError("GPTQ needs config=QuantizationConfig(...) (bits, group_size, ...)")
    own_format = getattr(packed, "checkpoint_format", None)
    if isinstance(own_format, str):
        if checkpoint_format is not None and checkpoint_format != own_format:
            raise ValueError(
                f"GPTQ checkpoint_format={checkpoint_format!r} differs from the layer's own "
                f"{own_format!r}"
            )
        checkpoint_format = own_format
    checkpoint_format = checkpoint_format or "gptq"
    check_checkpoint_format(checkpoint_format)
    return config, checkpoint_format


def _gptq_parts(packed: object, config: QuantizationConfig) -> tuple[dict, int]:
    parts = gather_weight_parts("gptq", packed, GPTQ_TENSOR_NAMES)
    qweight, g_idx = parts["qweight"], parts["g_idx"]
    if not _is_array(qweight) or len(qweight.shape) != 2:
        raise BufferError(
            f"GPTQ qweight: expected a 2-D int32 array [K*{config.bits}/32, N], got "
            f"{getattr(qweight, 'shape', type(qweight).__name__)}"
        )
    # K follows from qweight's rows: K*bits/32 words per column.
    k = config.in_features_of(qweight.shape[0])
    if k is None:
        raise ValueError(
            f"GPTQ {config.bits}-bit needs K*bits to be a multiple of 32: qweight's "
            f"{qweight.shape[0]} rows hold no whole K"
        )
    if not _is_array(g_idx) or tuple(g_idx.shape) != (k,):
        raise BufferError(
            f"GPTQ g_idx: expected a 1-D int32 array of length K={k} (qweight has "
            f"{qweight.shape[0]} rows of {config.bits}-bit codes), got "
            f"{list(getattr(g_idx, 'shape', [])) or type(g_idx).__name__}"
        )
    return parts, k


def _check_g_idx(g_idx: np.ndarray, config: QuantizationConfig, k: int) -> None:
    dtype = dtype_problem(g_idx.dtype, ("int32", "uint32"))
    if dtype is not None:
        raise BufferError(f"GPTQ g_idx: {dtype}")
    if is_device_buffer(g_idx):
        g_idx = g_idx.to_numpy()  # K int32: its values are checked as a host array's are
    problem = g_idx_problem(g_idx, config, k)
    if problem is not None:
        raise BufferError(f"GPTQ {problem}")


def _packed_names(enc: QuantizationEncoding) -> tuple[str, ...]:
    """Argument names of the packed operands (so errors say `input packed`, `input scales`)."""
    return GPTQ_TENSOR_NAMES if enc is QuantizationEncoding.GPTQ else ("packed",)


def _operands(
    enc: QuantizationEncoding,
    packed: object,
    config: QuantizationConfig | None,
    checkpoint_format: str | None,
) -> tuple[list[np.ndarray], list[TensorType], int, QuantizationConfig | None, str | None]:
    """(arrays, their graph types, K, the GPTQ config and checkpoint format).

    N stays a symbol ("n"; qzeros' packed columns "n_words"), so it never
    forces a recompile.
    """
    if enc is QuantizationEncoding.GPTQ:
        config, checkpoint_format = _gptq_config(packed, config, checkpoint_format)
        parts, k = _gptq_parts(packed, config)
        config.num_groups(k)  # group_size must divide K: checked before g_idx's values
        _check_g_idx(parts["g_idx"], config, k)
        layout = packed_layout(enc, config, None, k)
        types = [
            TensorType(
                DType(p.dtype),
                [("n_words" if p.name == "qzeros" else "n") if d is None else d for d in p.shape],
            )
            for p in layout
        ]
        return [parts[p] for p in GPTQ_TENSOR_NAMES], types, k, config, checkpoint_format
    if config is not None:
        raise ValueError(f"{enc.name} takes no config (config is for GPTQ)")
    if checkpoint_format is not None:
        raise ValueError(f"{enc.name} takes no checkpoint_format (it is for GPTQ)")
    arr, k = _gguf_k(enc, packed)
    return [arr], [TensorType(DType.uint8, ["n", arr.shape[1]])], k, None, None


def _run(
    source: str,
    function: str,
    inputs: Sequence[np.ndarray],
    device: str,
    threads: int | None,
    out: np.ndarray | None,
    pipeline: str | None = None,
    exact: bool = False,
) -> np.ndarray:
    program = compile_on_device(
        source,
        function,
        device=device,
        threads=threads,
        pipeline=pipeline,
        exact=exact,
        name=f"<{function}>",
    )
    (result,) = program(list(inputs), outputs=None if out is None else [out])
    return result


def eager_source(
    op: str,
    encoding: QuantizationEncoding | str,
    packed: object,
    *,
    config: QuantizationConfig | None = None,
    checkpoint_format: str | None = None,
    x_ndim: int = 2,
) -> tuple[str, list[np.ndarray], int]:
    """The one-op graph `dequantize` / `qmatmul` compile for these packed operands.

    Returns (MLIR text of @dequantize or @qmatmul, the packed arrays in
    argument order, K). N and the leading dimensions of x (`x_ndim` - 1 of
    them, for qmatmul) stay dynamic, so they never force a recompile.
    """
    enc = QuantizationEncoding.parse(encoding)
    arrays, types, k, config, checkpoint_format = _operands(enc, packed, config, checkpoint_format)
    if op not in ("dequantize", "qmatmul"):
        raise ValueError(f"eager_source: op must be 'dequantize' or 'qmatmul', got {op!r}")
    shapes = tuple((t.dtype, tuple(t.shape)) for t in types)
    text = _one_op_graph(op, enc, shapes, k, x_ndim, config, checkpoint_format)
    return text, arrays, k


_SOURCES: dict[tuple, str] = {}
"""The one-op graph of an eager call on a GGUF weight given as a numpy array,
by everything its compile and its argument checks depend on (see
`_source_memo`): a decode step's fixed cost, so it is not worked out again."""


def _source_memo(op: str, encoding: object, packed: object, x: object, **others) -> tuple | None:
    """`_SOURCES`' key for this call, or None when the call is not that simple.

    Simple: a GGUF weight as a numpy array with its encoding, or a GPTQLinear
    of numpy tensors on its own (`op(layer, x)`), and no other options. GGUF
    tensors, GPU buffers and the other forms take the full path."""
    if any(v is not None for v in others.values()):
        return None
    if type(packed) is np.ndarray and isinstance(encoding, str | QuantizationEncoding):
        weight: tuple = (encoding, packed.dtype, packed.shape[1:])
    elif packed is None and type(encoding) is GPTQLinear:
        tensors = _layer_tensors(encoding)
        if any(type(t) is not np.ndarray for t in tensors):
            return None
        weight = (encoding.config, encoding.checkpoint_format)
        weight += tuple((t.shape, t.dtype) for t in tensors)
    else:
        return None
    if x is None:
        return (op, *weight)
    if type(x) is not np.ndarray:
        return None
    return (op, *weight, x.dtype, x.ndim, x.shape[-1])


def _layer_tensors(layer: GPTQLinear) -> tuple[np.ndarray, ...]:
    """A GPTQ layer's tensors in argument order (GPTQ_TENSOR_NAMES)."""
    return layer.qweight, layer.qzeros, layer.scales, layer.g_idx


def _known_operands(encoding: object, packed: object) -> list[np.ndarray]:
    """The packed operands of a call `_SOURCES` knew: a GPTQ layer's g_idx
    values are still checked, since kernels index with them."""
    if packed is not None:
        return [packed]  # type: ignore[list-item]
    layer: GPTQLinear = encoding  # type: ignore[assignment]
    _check_g_idx(layer.g_idx, layer.config, layer.g_idx.shape[0])
    return list(_layer_tensors(layer))


@functools.lru_cache(maxsize=256)
def _one_op_graph(
    op: str,
    enc: QuantizationEncoding,
    packed_shapes: tuple[tuple[DType, tuple], ...],
    k: int,
    x_ndim: int,
    config: QuantizationConfig | None,
    checkpoint_format: str | None,
) -> str:
    """The MLIR text of the one-op graph, built once per distinct signature:
    building and printing it costs about a millisecond, more than a small call."""
    types = [TensorType(dtype, list(shape)) for dtype, shape in packed_shapes]
    names = list(_packed_names(enc))
    if op == "qmatmul":
        lead = [f"m{i}" for i in range(x_ndim - 1)]
        types, names = [TensorType(DType.float32, [*lead, k]), *types], ["x", *names]
    graph = Graph(op, input_types=types, input_names=names)
    packed_values = graph.inputs[len(names) - len(packed_shapes) :]
    if op == "qmatmul":
        y = ops.qmatmul(
            enc, config, graph.inputs[0], *packed_values, checkpoint_format=checkpoint_format
        )
    else:
        parts = packed_values if config is not None else packed_values[0]
        y = ops.dequantize(enc, parts, config, checkpoint_format=checkpoint_format)
    y.to_mlir().name_hint = "y"
    graph.output(y)
    return graph.to_mlir()


def dequantize(
    encoding: QuantizationEncoding | str | GGUFTensor | GPTQLinear,
    packed: Packed | GGUFTensor | GPTQLinear | None = None,
    *,
    config: QuantizationConfig | None = None,
    device: str = "cpu",
    threads: int | None = None,
    checkpoint_format: str | None = None,
    out: np.ndarray | None = None,
    pipeline: str | None = None,
) -> np.ndarray:
    """The float32 [N, K] values of a packed weight (bit-identical to ggml for GGUF).

    `dequantize(weight)` takes a GGUFTensor (runtime.gguf) or a GPTQLinear
    (runtime.gptq), which knows its encoding; `dequantize(encoding, packed)`
    takes the packed arrays (or such a weight, whose encoding must be
    `encoding`). GPTQ's `packed` is a GPTQLinear (its own config and checkpoint_format
    apply) or its four tensors with `config` and `checkpoint_format` ("gptq",
    v1, by default, or "gptq_v2"). `pipeline` names another compile pipeline
    (e.g. "quantir-cpu-scalar", the GPU's scalar lowering run on the CPU); the
    default suits the device.
    """
    memo = _source_memo(
        "dequantize", encoding, packed, None, config=config, checkpoint_format=checkpoint_format
    )
    if memo is not None and (known := _SOURCES.get(memo)) is not None:
        weight = _known_operands(encoding, packed)
        return _run(known, "dequantize", weight, device, threads, out, pipeline)
    encoding, packed = _own_encoding(encoding, packed, "dequantize")
    source, arrays, _ = eager_source(
        "dequantize", encoding, packed, config=config, checkpoint_format=checkpoint_format
    )
    result = _run(source, "dequantize", arrays, device, threads, out, pipeline)
    if memo is not None and len(_SOURCES) < 4096:
        _SOURCES[memo] = source  # the weight passed every check above
    return result


def qmatmul(
    encoding: QuantizationEncoding | str | GGUFTensor | GPTQLinear,
    x: np.ndarray,
    packed: Packed | GGUFTensor | GPTQLinear | None = None,
    *,
    config: QuantizationConfig | None = None,
    device: str = "cpu",
    threads: int | None = None,
    checkpoint_format: str | None = None,
    out: np.ndarray | None = None,
    pipeline: str | None = None,
    exact: bool = False,
) -> np.ndarray:
    """`x @ dequantize(packed).T` for x float32 [..., K]; the result is [..., N].

    `qmatmul(weight, x)` takes a GGUFTensor or GPTQLinear, which knows its
    encoding (and GPTQ config); `qmatmul(encoding, x, packed)` the packed
    arrays, as `dequantize` does.

    On the CPU, x is quantized to int8 blocks of 32 (one scale each) and
    multiplied with the weights' integer codes by integer dot products: the
    normwise relative error against float64 is about 5e-3 (at most 1e-2).
    `exact=True` multiplies exactly dequantized weights by the float x instead
    (slower; error at float32 rounding level). The GPU path is always exact.
    """
    memo = _source_memo(
        "qmatmul", encoding, packed, x, config=config, checkpoint_format=checkpoint_format
    )
    if memo is not None and (known := _SOURCES.get(memo)) is not None:
        weight = _known_operands(encoding, packed)
        return _run(known, "qmatmul", [x, *weight], device, threads, out, pipeline, exact)
    encoding, packed = _own_encoding(encoding, packed, "qmatmul")
    x_ndim = x.ndim if isinstance(x, np.ndarray) else 2
    source, arrays, k = eager_source(
        "qmatmul",
        encoding,
        packed,
        config=config,
        checkpoint_format=checkpoint_format,
        x_ndim=x_ndim,
    )
    if not isinstance(x, np.ndarray):
        raise BufferError(f"x: expected a numpy float32 array, got {type(x).__name__}")
    problem = dtype_problem(x.dtype, ("float32",))
    if problem is not None:
        hint = "" if x.dtype.name == "float32" else " (use x.astype(np.float32))"
        raise BufferError(f"x: {problem}{hint}")
    if x.ndim < 1 or x.shape[-1] != k:
        raise BufferError(
            f"x: expected shape [..., {k}] (K of the {QuantizationEncoding.parse(encoding).name} "
            f"weight), got {list(x.shape)}"
        )
    result = _run(source, "qmatmul", [x, *arrays], device, threads, out, pipeline, exact)
    if memo is not None and len(_SOURCES) < 4096:
        _SOURCES[memo] = source  # the weight and x passed every check above
    return result


INDEX_DTYPES = ("int32", "int64")
"""The numpy dtypes gather takes for indices (the IR's signless i32 / i64)."""


def _indices_array(indices: object) -> np.ndarray:
    """Indices as a C-contiguous int32/int64 array of rank >= 1 (lists of ints become int64).

    A GPU `DeviceBuffer` is taken as it is (for a GPU program; the runtime
    copies it to the host to check its values).
    """
    if is_device_buffer(indices):
        _check_index_layout(indices.dtype, indices.ndim)  # type: ignore[attr-defined]
        return indices  # type: ignore[return-value]
    if isinstance(indices, list | tuple):
        try:
            listed = np.asarray(indices)
        except ValueError:  # ragged
            listed = np.asarray([], dtype=object)
        if listed.dtype.kind not in "iu" and listed.size:
            raise BufferError("indices: a list of indices must hold integers")
        # Beyond int64 (uint64 above 2**63) stays uint64 and is refused below.
        indices = listed.astype(np.int64) if listed.dtype.kind == "i" or not listed.size else listed
    if isinstance(indices, int | np.integer):
        raise BufferError("indices: expected an array of rank 1 or more, got a scalar (use [i])")
    if not isinstance(indices, np.ndarray):
        raise BufferError(
            f"indices: expected a numpy int32 or int64 array (or a list of ints), "
            f"got {type(indices).__name__}"
        )
    _check_index_layout(indices.dtype, indices.ndim)
    return np.ascontiguousarray(indices)


def _check_index_layout(dtype: np.dtype, ndim: int) -> None:
    problem = dtype_problem(dtype, INDEX_DTYPES)
    if problem is not None:
        hint = "" if np.dtype(dtype).name in INDEX_DTYPES else " (use indices.astype(np.int64))"
        raise BufferError(f"indices: {problem}{hint}")
    if ndim < 1:
        raise BufferError("indices: expected an array of rank 1 or more, got a scalar")


@functools.lru_cache(maxsize=256)
def _gather_graph(enc: QuantizationEncoding, row_bytes: int, index_dtype: str, ndim: int) -> str:
    """The one-op gather graph: the table's rows and the indices' shape stay dynamic."""
    types = [
        TensorType(DType.uint8, ["n", row_bytes]),
        TensorType(DType(index_dtype), [f"m{i}" for i in range(ndim)]),
    ]
    graph = Graph("gather", input_types=types, input_names=["table", "indices"])
    y = ops.gather(enc, *graph.inputs)
    y.to_mlir().name_hint = "y"
    graph.output(y)
    return graph.to_mlir()


def gather(
    weight: np.ndarray | GGUFTensor,
    indices: np.ndarray | Sequence[int],
    *,
    encoding: QuantizationEncoding | str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    out: np.ndarray | None = None,
    pipeline: str | None = None,
) -> np.ndarray:
    """Rows `indices` of a packed GGUF table, dequantized: float32 [*indices.shape, K].

    `weight` is a GGUFTensor (a token embedding table, say: it knows its
    encoding) or a packed uint8 array [N, row_bytes] with `encoding`.
    `indices` is an int32 or int64 array of any rank >= 1 (or a list of
    ints); indices may repeat and come in any order. For `device="cuda:N"`
    the table and the indices may also be GPU `DeviceBuffer`s
    (`quantir.runtime.cuda.to_device`). The values are
    bit-identical to ggml's dequantization of those rows, i.e. to
    `dequantize(weight)[indices]`, but only those rows are unpacked. An index
    outside [0, N) raises BufferError naming it before anything runs. GPTQ
    weights are not supported.
    """
    enc, packed = _own_encoding(encoding, weight, "gather")
    if not enc.is_gguf:
        raise ValueError("gather: GPTQ weights are not supported (gather reads GGUF table rows)")
    table, _ = _gguf_k(enc, packed)  # a numpy array or a resident DeviceBuffer
    row_bytes = table.shape[1]
    ids = _indices_array(indices)
    source = _gather_graph(enc, row_bytes, np.dtype(ids.dtype).name, ids.ndim)
    return _run(source, "gather", [table, ids], device, threads, out, pipeline)
