"""The `quant` dialect: packed weights and the ops that consume them.

A graph file is self-describing: each `quant.weight` names its weight, gives
its logical [N, K] shape and its encoding, and the ops that read packed bytes
(`quant.dequantize`, `quant.qmatmul`) carry the encoding too, so every
consumer can be checked against the layout of its operand.

```mlir
func.func @linear(%x: tensor<?x4096xf32>) -> tensor<?x4096xf32> {
  %w = quant.weight "linear.weight" #quant.encoding<q4_k> [4096, 4096] : tensor<4096x2304xui8>
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w
      : (tensor<?x4096xf32>, tensor<4096x2304xui8>) -> tensor<?x4096xf32>
  func.return %y : tensor<?x4096xf32>
}
```

Packed GGUF bytes are `ui8` (or signless `i8`) tensors [N, K / elements_per_block *
block_size]; GPTQ weights are four tensors (qweight, qzeros, scales, g_idx)
whose shapes follow from the `#quant.gptq` configuration. The consuming ops
also have a destination-passing form on memrefs (`outs(%buffer)`, no result),
which bufferization produces.

This module also re-exports the public Python API of `quantir.dialects.encoding`
and `quantir.dialects.weight` (QuantizationEncoding, BlockParameters,
QuantizationConfig, Weight, DType, DeviceRef). docs/ir.md documents every op
and attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, TypeVar

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BoolAttr,
    DenseArrayBase,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    IntAttr,
    IntegerType,
    MemRefType,
    Signedness,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, Dialect, Operation, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    opt_result_def,
    param_def,
    prop_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from quantir.dialects.destination_style import DestinationStyleOp, DimSolver, WritesOutBuffer
from quantir.dialects.encoding import (
    GPTQ_BITS,
    GPTQ_CHECKPOINT_FORMATS,
    GPTQ_TENSOR_NAMES,
    BlockParameters,
    NoBlockParametersError,
    PackedLayoutError,
    QuantizationConfig,
    QuantizationEncoding,
    gptq_config_text,
    packed_layout,
)
from quantir.dialects.weight import DeviceRef, DType, Weight

__all__ = [
    "BlockParameters",
    "DType",
    "DequantizeOp",
    "DeviceRef",
    "EncodingAttr",
    "GPTQConfigAttr",
    "GatherOp",
    "NoBlockParametersError",
    "QMatmulOp",
    "Quant",
    "QuantizationConfig",
    "QuantizationEncoding",
    "Weight",
    "WeightOp",
]

D = TypeVar("D")
"""A dimension as result-shape inference's caller tracks it."""

# --------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------

EncodingKind = StrEnum("EncodingKind", {e.value: e.name for e in QuantizationEncoding})
"""The lower-case encoding names as an xDSL StrEnum ("q4_0", "q4_k", ...)."""


@irdl_attr_definition
class EncodingAttr(EnumAttribute[EncodingKind]):
    """The packed format of a weight: `#quant.encoding<q4_k>`."""

    name = "quant.encoding"

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> EncodingKind:
        with parser.in_angle_brackets():
            return super().parse_parameter(parser)

    def print_parameter(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            super().print_parameter(printer)

    @staticmethod
    def get(encoding: QuantizationEncoding | str) -> EncodingAttr:
        if isinstance(encoding, str):
            encoding = QuantizationEncoding.parse(encoding)
        return EncodingAttr(EncodingKind(encoding.name))

    @property
    def encoding(self) -> QuantizationEncoding:
        return QuantizationEncoding.parse(self.data.value)


@irdl_attr_definition
class GPTQConfigAttr(ParametrizedAttribute):
    """GPTQ quantization parameters and how the checkpoint stores zero points.

    `#quant.gptq<bits = 4, group_size = 128, desc_act = false, sym = true, format = gptq>`

    `format` is `gptq` (v1: the real zero point is the stored one plus 1) or
    `gptq_v2` (the stored zero point is the real one).
    """

    name = "quant.gptq"

    bits: IntAttr = param_def()
    group_size: IntAttr = param_def()
    desc_act: BoolAttr = param_def()
    sym: BoolAttr = param_def()
    checkpoint_format: StringAttr = param_def()

    @staticmethod
    def get(config: QuantizationConfig, checkpoint_format: str = "gptq") -> GPTQConfigAttr:
        return GPTQConfigAttr(
            IntAttr(config.bits),
            IntAttr(config.group_size),
            BoolAttr.from_bool(config.desc_act),
            BoolAttr.from_bool(config.sym),
            StringAttr(checkpoint_format),
        )

    @property
    def config(self) -> QuantizationConfig:
        return QuantizationConfig(
            "gptq",
            self.bits.data,
            self.group_size.data,
            bool(self.desc_act.value.data),
            bool(self.sym.value.data),
        )

    @staticmethod
    def field_error(key: str, value: object) -> str | None:
        """Why `value` is not a valid `key` field, or None if it is.

        Shared by the parser (which reports the field's location) and verify()
        (which checks attributes built from Python).
        """
        if key == "bits" and value not in GPTQ_BITS:
            return f"#quant.gptq bits must be one of {list(GPTQ_BITS)}, got {value}"
        if key == "group_size" and not (value == -1 or (isinstance(value, int) and value > 0)):
            return f"#quant.gptq group_size must be -1 or positive, got {value}"
        if key == "format" and value not in GPTQ_CHECKPOINT_FORMATS:
            return (
                "#quant.gptq format must be one of "
                f"{', '.join(GPTQ_CHECKPOINT_FORMATS)}, got {value}"
            )
        return None

    def verify(self) -> None:
        for key, value in (
            ("bits", self.bits.data),
            ("group_size", self.group_size.data),
            ("format", self.checkpoint_format.data),
        ):
            error = self.field_error(key, value)
            if error is not None:
                raise VerifyException(error)

    _FIELDS: ClassVar[tuple[str, ...]] = ("bits", "group_size", "desc_act", "sym", "format")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values: dict[str, object] = {}
        start = parser.pos

        def parse_field() -> None:
            pos = parser.pos
            key = parser.parse_identifier()
            if key not in cls._FIELDS:
                parser.raise_error(
                    f"unknown #quant.gptq field '{key}', expected one of {', '.join(cls._FIELDS)}",
                    pos,
                )
            if key in values:
                parser.raise_error(f"#quant.gptq field '{key}' given twice", pos)
            parser.parse_punctuation("=")
            value_pos = parser.pos
            if key in ("bits", "group_size"):
                values[key] = parser.parse_integer(allow_boolean=False)
            elif key in ("desc_act", "sym"):
                values[key] = parser.parse_boolean()
            else:
                values[key] = parser.parse_identifier()
            # Checked here rather than only in verify() so that the error
            # points at the bad value in the user's file.
            error = cls.field_error(key, values[key])
            if error is not None:
                parser.raise_error(error, value_pos, parser.pos)

        parser.parse_comma_separated_list(parser.Delimiter.ANGLE, parse_field)
        missing = [k for k in cls._FIELDS if k not in values and k != "format"]
        if missing:
            parser.raise_error(
                f"#quant.gptq is missing field(s): {', '.join(missing)}", start, parser.pos
            )
        return (
            IntAttr(values["bits"]),
            IntAttr(values["group_size"]),
            BoolAttr.from_bool(values["desc_act"]),
            BoolAttr.from_bool(values["sym"]),
            StringAttr(values.get("format", "gptq")),
        )

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(
            gptq_config_text(
                self.bits.data,
                self.group_size.data,
                bool(self.desc_act.value.data),
                bool(self.sym.value.data),
                self.checkpoint_format.data,
            )
        )


# --------------------------------------------------------------------------
# Shape checking shared by the ops
# --------------------------------------------------------------------------

ShapedType = TensorType | MemRefType


def _fmt_shape(shape: Sequence[int]) -> str:
    return "x".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape) or "scalar"


def _compatible(a: int, b: int) -> bool:
    return a == b or a == DYNAMIC_INDEX or b == DYNAMIC_INDEX


def _shape_matches(shape: Sequence[int], expected: Sequence[int]) -> bool:
    """Same rank, and every dimension equal or dynamic on either side."""
    return len(shape) == len(expected) and all(
        _compatible(a, b) for a, b in zip(shape, expected, strict=True)
    )


def _is_byte(t: Attribute) -> bool:
    return (
        isinstance(t, IntegerType)
        and t.width.data == 8
        and t.signedness.data
        in (
            Signedness.SIGNLESS,
            Signedness.UNSIGNED,
        )
    )


def _is_i32(t: Attribute) -> bool:
    # Signless only: the lowering's integer arithmetic (arith) takes signless
    # integers, so an si32 operand that passed here would fail there, unlocated.
    return (
        isinstance(t, IntegerType)
        and t.width.data == 32
        and t.signedness.data == (Signedness.SIGNLESS)
    )


def packed_operand_names(encoding: QuantizationEncoding) -> tuple[str, ...]:
    """What each packed operand of an encoding is."""
    if encoding is QuantizationEncoding.GPTQ:
        return GPTQ_TENSOR_NAMES
    return ("packed bytes",)


def verify_packed_operands(
    what: str,
    encoding: QuantizationEncoding,
    config: GPTQConfigAttr | None,
    packed: Sequence[Attribute],
    n: int,
    k: int,
) -> None:
    """Check packed operand types against an [N, K] logical weight.

    `n` may be DYNAMIC_INDEX; `k` must be static. Raises VerifyException with a
    message that names the operand and what was expected.
    """
    names = packed_operand_names(encoding)
    if encoding is QuantizationEncoding.GPTQ:
        if config is None:
            raise VerifyException(
                f"{what}: GPTQ needs a #quant.gptq config (bits, group_size, desc_act, sym)"
            )
    elif config is not None:
        raise VerifyException(f"{what}: #quant.gptq config given for {encoding.name}, GPTQ only")
    if len(packed) != len(names):
        raise VerifyException(
            f"{what}: {encoding.name} takes {len(names)} packed operand(s) "
            f"({', '.join(names)}), got {len(packed)}"
        )
    for name, t in zip(names, packed, strict=True):
        if not isinstance(t, ShapedType):
            raise VerifyException(f"{what}: {name} must be a tensor or memref, got {t}")
    if k == DYNAMIC_INDEX:
        raise VerifyException(f"{what}: K (the reduction dimension) must be static")

    cfg = config.config if config is not None else None
    if encoding.is_gguf:
        (t,) = packed
        assert isinstance(t, ShapedType)
        if not _is_byte(t.element_type):
            raise VerifyException(
                f"{what}: {encoding.name} packed bytes must have element type ui8 (or i8), "
                f"got {t.element_type}"
            )
    elif n == DYNAMIC_INDEX:
        # N is not known from the consumer (a dynamic result, or the weight
        # itself): take it from qweight or scales, so that the four tensors
        # are still checked against one another.
        for t in (packed[0], packed[2]):
            shape = t.get_shape() if isinstance(t, ShapedType) else ()
            if len(shape) == 2 and shape[1] != DYNAMIC_INDEX:
                n = shape[1]
                break
    try:
        layout = packed_layout(encoding, cfg, None if n == DYNAMIC_INDEX else n, k)
    except PackedLayoutError as e:
        if e.axis == "group_size":
            raise VerifyException(
                f"{what}: GPTQ group_size {e.multiple} does not divide K={k}"
            ) from None
        raise VerifyException(f"{what}: {e}") from None
    for name, t, part in zip(names, packed, layout, strict=True):
        assert isinstance(t, ShapedType)
        expected = tuple(DYNAMIC_INDEX if d is None else d for d in part.shape)
        shape = tuple(t.get_shape())
        if encoding.is_gguf:
            if not _shape_matches(shape, expected):
                bs = encoding.block_size
                raise VerifyException(
                    f"{what}: {encoding.name} packed bytes for a {_fmt_shape((n, k))} weight "
                    f"must be {_fmt_shape(expected)} ({expected[1] // bs} block(s) of {bs} "
                    f"bytes per row), got {_fmt_shape(shape)}"
                )
            continue
        assert cfg is not None
        elem_ok = (
            isinstance(t.element_type, Float16Type) if name == "scales" else _is_i32(t.element_type)
        )
        if not elem_ok:
            want = "f16" if name == "scales" else "i32"
            raise VerifyException(
                f"{what}: GPTQ {name} must have element type {want}, got {t.element_type}"
            )
        if not _shape_matches(shape, expected):
            raise VerifyException(
                f"{what}: GPTQ {name} for a {_fmt_shape((n, k))} weight with bits={cfg.bits}, "
                f"group_size={cfg.group_size} must be {_fmt_shape(expected)}, "
                f"got {_fmt_shape(shape)}"
            )


def _check_f32(what: str, name: str, t: Attribute) -> ShapedType:
    if not isinstance(t, ShapedType):
        raise VerifyException(f"{what}: {name} must be a tensor or memref, got {t}")
    if not isinstance(t.element_type, Float32Type):
        raise VerifyException(f"{what}: {name} must have element type f32, got {t.element_type}")
    return t


def _n_of(encoding: QuantizationEncoding, packed: Sequence[Attribute]) -> int:
    """The N (rows) a set of packed operands describes, or DYNAMIC_INDEX."""
    if not packed or not isinstance(packed[0], ShapedType) or not packed[0].get_shape():
        return DYNAMIC_INDEX
    shape = packed[0].get_shape()
    if encoding is QuantizationEncoding.GPTQ:
        return shape[1] if len(shape) == 2 else DYNAMIC_INDEX
    return shape[0]


def _k_of(
    encoding: QuantizationEncoding, config: GPTQConfigAttr | None, packed: Sequence[Attribute]
) -> tuple[int, str] | None:
    """The K a set of packed operands holds and where it shows, or None when unknown.

    GGUF: the static byte count of a row, when it is whole blocks. GPTQ: g_idx's
    length, else qweight's rows of codes.
    """
    shapes = [t.get_shape() if isinstance(t, ShapedType) else () for t in packed]
    if encoding.is_gguf:
        if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][1] == DYNAMIC_INDEX:
            return None
        k = encoding.row_elements(shapes[0][1])
        return None if not k else (k, f"{encoding.name} rows of {shapes[0][1]} bytes")
    if config is None or len(shapes) != 4:
        return None
    if len(shapes[3]) == 1 and shapes[3][0] != DYNAMIC_INDEX:
        return shapes[3][0], f"g_idx has {shapes[3][0]} entries"
    if len(shapes[0]) == 2 and shapes[0][0] != DYNAMIC_INDEX:
        k = config.config.in_features_of(shapes[0][0])
        if k is not None:
            return k, f"qweight has {shapes[0][0]} rows of {config.config.bits}-bit codes"
    return None


class _EncodedOp(DestinationStyleOp):
    """A quant op that reads a packed weight (see DestinationStyleOp for its two forms).

    `OP #quant.encoding<e> [config #quant.gptq<...>] %a, %b [outs(%o)] [attrs] : (types) -> types`
    """

    VALUE_FORM_RULE: ClassVar[str] = (
        "every operand and the result must be tensors (use outs() on memrefs)"
    )

    @property
    def encoding_kind(self) -> QuantizationEncoding:
        return self.encoding.encoding  # type: ignore[attr-defined]

    @property
    def diagnostic_name(self) -> str:
        return f"{self.name} ({self.encoding_kind.name})"

    @classmethod
    def _from_parsed(cls, encoding, operands, result_type, out, config) -> _EncodedOp:
        raise NotImplementedError

    @classmethod
    def parse(cls, parser: Parser) -> _EncodedOp:
        pos = parser.pos
        enc = parser.parse_attribute()
        if not isinstance(enc, EncodingAttr):
            parser.raise_error(f"expected a #quant.encoding attribute, got {enc}", pos)
        config = None
        if parser.parse_optional_keyword("config") is not None:
            pos = parser.pos
            config = parser.parse_attribute()
            if not isinstance(config, GPTQConfigAttr):
                parser.raise_error(f"expected a #quant.gptq attribute, got {config}", pos)
        parsed = cls.parse_destination(
            parser,
            lambda: parser.parse_comma_separated_list(
                parser.Delimiter.NONE, parser.parse_unresolved_operand
            ),
        )
        op = cls._from_parsed(enc.encoding, parsed.inputs, parsed.result_type, parsed.out, config)
        op.attributes.update(parsed.attributes)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.encoding)  # type: ignore[attr-defined]
        config = self.config  # type: ignore[attr-defined]
        if config is not None:
            printer.print_string(" config ")
            printer.print_attribute(config)
        printer.print_string(" ")
        self.print_destination(printer)

    def rows(self, packed_dims: Sequence[list[D]], solver: DimSolver[D]) -> D:
        """N, the packed weight's rows, from the packed operands' dimensions (GPTQ's
        tensors must agree on it)."""
        if self.encoding_kind is not QuantizationEncoding.GPTQ:
            return packed_dims[0][0]
        config = self.config  # type: ignore[attr-defined]
        assert config is not None
        bits = config.bits.data
        qweight, qzeros, scales, _ = packed_dims
        n = solver.unify(
            [qweight[1], scales[1]], f"{self.name}: GPTQ qweight and scales disagree on N"
        )
        solver.check(
            qzeros[1], n, f"{self.name}: GPTQ qzeros must have N*{bits}/32 columns", 32, bits
        )
        return n


# --------------------------------------------------------------------------
# Ops
# --------------------------------------------------------------------------


@irdl_op_definition
class WeightOp(IRDLOperation):
    """Declares a named weight whose data the runtime binds by name.

    An encoded weight gives its encoding and logical [N, K] shape; its
    results are the packed tensors (one for GGUF, four for GPTQ). A float
    weight gives only its type.

    ```mlir
    %w = quant.weight "blk.0.attn_q.weight" #quant.encoding<q4_k> [4096, 4096]
        : tensor<4096x2304xui8>
    %qw, %qz, %s, %g = quant.weight "layer.weight" #quant.encoding<gptq> [1024, 4096]
        config #quant.gptq<bits = 4, group_size = 128, desc_act = false, sym = true, format = gptq>
        : tensor<512x1024xi32>, tensor<32x128xi32>, tensor<32x1024xf16>, tensor<4096xi32>
    %b = quant.weight "output.bias" : tensor<1024xf32>
    ```
    """

    name = "quant.weight"

    weight_name = prop_def(StringAttr)
    encoding = opt_prop_def(EncodingAttr)
    shape = opt_prop_def(DenseArrayBase)
    config = opt_prop_def(GPTQConfigAttr)
    results_ = var_result_def(TensorType)

    traits = traits_def(Pure())

    def __init__(
        self,
        weight_name: str,
        result_types: Sequence[Attribute],
        encoding: QuantizationEncoding | None = None,
        shape: Sequence[int] | None = None,
        config: GPTQConfigAttr | None = None,
    ):
        props: dict[str, Attribute | None] = {
            "weight_name": StringAttr(weight_name),
            "encoding": EncodingAttr.get(encoding) if encoding is not None else None,
            "shape": DenseArrayBase.from_list(i64, list(shape)) if shape is not None else None,
            "config": config,
        }
        super().__init__(result_types=[list(result_types)], properties=props)

    @property
    def logical_shape(self) -> tuple[int, ...]:
        if self.shape is not None:
            return tuple(self.shape.get_values())
        t = self.results_[0].type
        assert isinstance(t, TensorType)
        return tuple(t.get_shape())

    def verify_(self) -> None:
        what = f'quant.weight "{self.weight_name.data}"'
        if not self.weight_name.data:
            raise VerifyException("quant.weight: the weight name must not be empty")
        if self.encoding is None:
            if self.shape is not None or self.config is not None:
                raise VerifyException(
                    f"{what}: a logical shape or config needs an encoding "
                    "(float weights give only their type)"
                )
            if len(self.results_) != 1:
                raise VerifyException(f"{what}: a float weight has exactly one result")
            t = self.results_[0].type
            assert isinstance(t, TensorType)
            if any(d == DYNAMIC_INDEX for d in t.get_shape()):
                raise VerifyException(f"{what}: weight shapes must be static, got {t}")
            return
        encoding = self.encoding.encoding
        if self.shape is None:
            raise VerifyException(f"{what}: an encoded weight needs its logical [N, K] shape")
        shape = self.logical_shape
        if len(shape) != 2 or any(d <= 0 for d in shape):
            raise VerifyException(
                f"{what}: the logical shape of an encoded weight is [N, K] with positive "
                f"sizes, got {list(shape)}"
            )
        n, k = shape
        types = [r.type for r in self.results_]
        for t in types:
            assert isinstance(t, TensorType)
            if any(d == DYNAMIC_INDEX for d in t.get_shape()):
                raise VerifyException(f"{what}: weight shapes must be static, got {t}")
        verify_packed_operands(what, encoding, self.config, types, n, k)

    @classmethod
    def parse(cls, parser: Parser) -> WeightOp:
        name = parser.parse_str_literal("weight name")
        encoding = shape = config = None
        pos = parser.pos
        attr = parser.parse_optional_attribute()
        if isinstance(attr, DictionaryAttr):
            # `quant.weight "b" {k = v} : ...`: the attribute dictionary of a
            # float weight, which has no encoding before it.
            attrs = dict(attr.data)
        else:
            if attr is not None:
                if not isinstance(attr, EncodingAttr):
                    parser.raise_error(f"expected a #quant.encoding attribute, got {attr}", pos)
                encoding = attr.encoding
                if parser.parse_optional_punctuation("[") is None:
                    parser.raise_error(
                        "expected the logical shape [N, K] of the encoded weight after its encoding"
                    )
                shape = parser.parse_comma_separated_list(
                    parser.Delimiter.NONE, lambda: parser.parse_integer(allow_boolean=False)
                )
                parser.parse_punctuation("]")
                if parser.parse_optional_keyword("config") is not None:
                    pos = parser.pos
                    cfg = parser.parse_attribute()
                    if not isinstance(cfg, GPTQConfigAttr):
                        parser.raise_error(f"expected a #quant.gptq attribute, got {cfg}", pos)
                    config = cfg
            attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
        op = cls(name, types, encoding, shape, config)
        op.attributes.update(attrs)
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.weight_name.data)
        if self.encoding is not None:
            printer.print_string(" ")
            printer.print_attribute(self.encoding)
            if self.shape is not None:
                printer.print_string(
                    " [" + ", ".join(str(d) for d in self.shape.get_values()) + "]"
                )
            if self.config is not None:
                printer.print_string(" config ")
                printer.print_attribute(self.config)
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_list([r.type for r in self.results_], printer.print_attribute)


@irdl_op_definition
class DequantizeOp(_EncodedOp):
    """Unpacks a packed [N, K] weight into f32 values.

    The value is bit-identical to ggml's dequantizers (gguf-py's
    `gguf.quants.dequantize`) for GGUF encodings; for GPTQ it is
    `scales[g_idx[k], n] * (q[k, n] - zero[g_idx[k], n])`, laid out [N, K].

    ```mlir
    %y = quant.dequantize #quant.encoding<q4_k> %w
        : (tensor<4096x2304xui8>) -> tensor<4096x4096xf32>
    quant.dequantize #quant.encoding<q4_0> %wb outs(%yb)
        : (memref<?x72xi8>, memref<?x128xf32>) -> ()
    ```
    """

    name = "quant.dequantize"

    encoding = prop_def(EncodingAttr)
    config = opt_prop_def(GPTQConfigAttr)
    packed = var_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(WritesOutBuffer())

    def __init__(
        self,
        encoding: QuantizationEncoding,
        packed: Sequence[SSAValue | Operation],
        result_type: Attribute | None = None,
        out: SSAValue | Operation | None = None,
        config: GPTQConfigAttr | None = None,
    ):
        super().__init__(
            operands=[list(packed), [out] if out is not None else []],
            result_types=[[result_type] if result_type is not None else []],
            properties={"encoding": EncodingAttr.get(encoding), "config": config},
        )

    @classmethod
    def _from_parsed(cls, encoding, operands, result_type, out, config) -> DequantizeOp:
        return cls(encoding, operands, result_type, out, config)

    def on_buffers(self, inputs: Sequence[SSAValue], out: SSAValue) -> DequantizeOp:
        return DequantizeOp(self.encoding_kind, inputs, None, out, self.config)

    def infer_result_dims(self, operand_dims: Sequence[list[D]], solver: DimSolver[D]) -> list[D]:
        # K is static: the result type spells it.
        result = self.result
        assert result is not None and isinstance(result.type, TensorType)
        return [self.rows(operand_dims, solver), result.type.get_shape()[1]]

    def verify_(self) -> None:
        encoding = self.encoding_kind
        what = self.diagnostic_name
        rt = _check_f32(what, "result", self.destination_type())
        shape = rt.get_shape()
        if len(shape) != 2:
            raise VerifyException(
                f"{what}: the result is the logical [N, K] weight, got rank {len(shape)}"
            )
        n, k = shape
        types = [p.type for p in self.packed]
        verify_packed_operands(what, encoding, self.config, types, n, k)
        pn = _n_of(encoding, types)
        if not _compatible(pn, n):
            raise VerifyException(f"{what}: the packed weight has N={pn} rows, the result N={n}")


@irdl_op_definition
class QMatmulOp(_EncodedOp):
    """`x @ dequantize(w).T` without materializing the dequantized weight.

    `x` is [..., K] f32 (leading dimensions may be dynamic); the packed
    weight is a logical [N, K]; the result is [..., N].

    ```mlir
    %y = quant.qmatmul #quant.encoding<q6_k> %x, %w
        : (tensor<?x4096xf32>, tensor<1024x3360xui8>) -> tensor<?x1024xf32>
    ```
    """

    name = "quant.qmatmul"

    encoding = prop_def(EncodingAttr)
    config = opt_prop_def(GPTQConfigAttr)
    x = operand_def(TensorType | MemRefType)
    packed = var_operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(WritesOutBuffer())

    def __init__(
        self,
        encoding: QuantizationEncoding,
        x: SSAValue | Operation,
        packed: Sequence[SSAValue | Operation],
        result_type: Attribute | None = None,
        out: SSAValue | Operation | None = None,
        config: GPTQConfigAttr | None = None,
    ):
        super().__init__(
            operands=[x, list(packed), [out] if out is not None else []],
            result_types=[[result_type] if result_type is not None else []],
            properties={"encoding": EncodingAttr.get(encoding), "config": config},
        )

    @classmethod
    def _from_parsed(cls, encoding, operands, result_type, out, config) -> QMatmulOp:
        if not operands:
            raise VerifyException("quant.qmatmul: expected operands x and the packed weight")
        return cls(encoding, operands[0], operands[1:], result_type, out, config)

    def on_buffers(self, inputs: Sequence[SSAValue], out: SSAValue) -> QMatmulOp:
        x, *packed = inputs
        return QMatmulOp(self.encoding_kind, x, packed, None, out, self.config)

    def infer_result_dims(self, operand_dims: Sequence[list[D]], solver: DimSolver[D]) -> list[D]:
        x, *packed = operand_dims
        return [*x[:-1], self.rows(packed, solver)]

    def verify_(self) -> None:
        encoding = self.encoding_kind
        what = self.diagnostic_name
        xt = _check_f32(what, "x", self.x.type)
        rt = _check_f32(what, "result", self.destination_type())
        xs, rs = xt.get_shape(), rt.get_shape()
        if len(xs) < 1:
            raise VerifyException(f"{what}: x must be [..., K], got a scalar")
        k = xs[-1]
        if k == DYNAMIC_INDEX:
            raise VerifyException(f"{what}: K (the last dimension of x) must be static")
        types = [p.type for p in self.packed]
        n = _n_of(encoding, types)
        # x and the weight must agree on K: when the weight's own shape fixes
        # K, a mismatch is x's fault, not the packed size's.
        weight_k = _k_of(encoding, self.config, types)
        if weight_k is not None and weight_k[0] != k:
            raise VerifyException(
                f"{what}: x must be [..., K={weight_k[0]}] for the packed weight "
                f"({weight_k[1]}), got x of shape {_fmt_shape(xs)}"
            )
        verify_packed_operands(what, encoding, self.config, types, n, k)
        if len(rs) != len(xs):
            raise VerifyException(
                f"{what}: the result must have the rank of x ({len(xs)}), got {len(rs)}"
            )
        for i, (a, b) in enumerate(zip(xs[:-1], rs[:-1], strict=True)):
            if not _compatible(a, b):
                raise VerifyException(
                    f"{what}: leading dimension {i} of x ({_fmt_shape([a])}) and of the "
                    f"result ({_fmt_shape([b])}) differ"
                )
        if not _compatible(rs[-1], n):
            raise VerifyException(
                f"{what}: the result's last dimension must be N={_fmt_shape([n])} "
                f"(rows of the packed weight), got {_fmt_shape([rs[-1]])}"
            )


def _is_index_element(t: Attribute) -> bool:
    # Signless only, as for GPTQ's i32 tensors: the lowering's index_cast takes
    # signless integers.
    return (
        isinstance(t, IntegerType)
        and t.width.data in (32, 64)
        and t.signedness.data == Signedness.SIGNLESS
    )


@irdl_op_definition
class GatherOp(_EncodedOp):
    """Rows of a packed GGUF table, chosen by index, dequantized to f32.

    `table` is a packed [N, K] weight (a token embedding table, say);
    `indices` holds row numbers (signless i32 or i64, any rank >= 1); the
    result is `dequantize(table)[indices]`, of shape [*indices.shape, K],
    bit-identical to ggml's dequantization of those rows. Only the selected
    rows are unpacked. An index outside [0, N) is an error the runtime
    reports before any kernel runs (compiled code clamps it to a valid row,
    so it never reads outside the table).

    ```mlir
    %e = quant.gather #quant.encoding<q4_k> %table, %ids
        : (tensor<32000x144xui8>, tensor<?xi32>) -> tensor<?x256xf32>
    quant.gather #quant.encoding<q8_0> %tb, %ib outs(%eb)
        : (memref<?x34xi8>, memref<?xi64>, memref<?x32xf32>) -> ()
    ```

    GPTQ is refused: its weights pack each logical row across a column of
    four tensors, and GPTQ checkpoints quantize linear layers, not the
    embedding tables gather is for.
    """

    name = "quant.gather"

    encoding = prop_def(EncodingAttr)
    config = opt_prop_def(GPTQConfigAttr)
    table = operand_def(TensorType | MemRefType)
    indices = operand_def(TensorType | MemRefType)
    out = opt_operand_def(MemRefType)
    result = opt_result_def(TensorType)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)
    traits = traits_def(WritesOutBuffer())

    def __init__(
        self,
        encoding: QuantizationEncoding,
        table: SSAValue | Operation,
        indices: SSAValue | Operation,
        result_type: Attribute | None = None,
        out: SSAValue | Operation | None = None,
        config: GPTQConfigAttr | None = None,
    ):
        super().__init__(
            operands=[table, indices, [out] if out is not None else []],
            result_types=[[result_type] if result_type is not None else []],
            properties={"encoding": EncodingAttr.get(encoding), "config": config},
        )

    @classmethod
    def _from_parsed(cls, encoding, operands, result_type, out, config) -> GatherOp:
        if len(operands) != 2:
            raise VerifyException(
                f"quant.gather: expected two operands, the packed table and the indices, "
                f"got {len(operands)}"
            )
        return cls(encoding, operands[0], operands[1], result_type, out, config)

    def on_buffers(self, inputs: Sequence[SSAValue], out: SSAValue) -> GatherOp:
        table, indices = inputs
        return GatherOp(self.encoding_kind, table, indices, None, out, self.config)

    def infer_result_dims(self, operand_dims: Sequence[list[D]], solver: DimSolver[D]) -> list[D]:
        # K is static: the result type spells it. The table's rows are free.
        result = self.result
        assert result is not None and isinstance(result.type, TensorType)
        _, indices = operand_dims
        return [*indices, result.type.get_shape()[-1]]

    def verify_(self) -> None:
        encoding = self.encoding_kind
        what = self.diagnostic_name
        if encoding is QuantizationEncoding.GPTQ:
            raise VerifyException(
                f"{what}: GPTQ tables are not supported: gather reads rows of GGUF "
                "block-quantized tables (GPTQ packs each row across a column of its tensors)"
            )
        rt = _check_f32(what, "result", self.destination_type())
        it = self.indices.type
        if not isinstance(it, ShapedType):
            raise VerifyException(f"{what}: indices must be a tensor or memref, got {it}")
        if not _is_index_element(it.element_type):
            raise VerifyException(
                f"{what}: indices must have element type i32 or i64 (signless), "
                f"got {it.element_type}"
            )
        ishape, rshape = it.get_shape(), rt.get_shape()
        if len(ishape) < 1:
            raise VerifyException(f"{what}: indices must have rank 1 or more, got a scalar")
        if len(rshape) != len(ishape) + 1:
            raise VerifyException(
                f"{what}: the result must be [*indices.shape, K] (rank {len(ishape) + 1}), "
                f"got rank {len(rshape)}"
            )
        for i, (a, b) in enumerate(zip(ishape, rshape[:-1], strict=True)):
            if not _compatible(a, b):
                raise VerifyException(
                    f"{what}: dimension {i} of the indices ({_fmt_shape([a])}) and of the "
                    f"result ({_fmt_shape([b])}) differ"
                )
        k = rshape[-1]
        if k == DYNAMIC_INDEX:
            raise VerifyException(f"{what}: K (the last dimension of the result) must be static")
        types = [self.table.type]
        # The table's rows must hold K: when its row length fixes K, a mismatch
        # is the result's fault, not the packed size's.
        table_k = _k_of(encoding, self.config, types)
        if table_k is not None and table_k[0] != k:
            raise VerifyException(
                f"{what}: the result must be [..., K={table_k[0]}] for the packed table "
                f"({table_k[1]}), got {_fmt_shape(rshape)}"
            )
        verify_packed_operands(what, encoding, self.config, types, _n_of(encoding, types), k)


Quant = Dialect(
    "quant",
    [WeightOp, DequantizeOp, QMatmulOp, GatherOp],
    [EncodingAttr, GPTQConfigAttr],
)
