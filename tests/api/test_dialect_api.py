"""The quant dialect's Python side: attributes and ops built from Python.

The text syntax is covered by tests/filecheck/dialects; here: the bridges
between the Python API (QuantizationEncoding, QuantizationConfig) and the IR
attributes, the checks that only Python construction reaches, and that ops
built in Python print as text that parses back to the same thing.
"""

from __future__ import annotations

import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BoolAttr,
    Float16Type,
    Float32Type,
    IntAttr,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
)
from xdsl.ir import Block, Region
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from quantir.compiler.context import make_context
from quantir.dialects.quant import (
    DequantizeOp,
    EncodingAttr,
    GPTQConfigAttr,
    QMatmulOp,
    QuantizationConfig,
    QuantizationEncoding,
    WeightOp,
)

E = QuantizationEncoding
UI8 = IntegerType(8, Signedness.UNSIGNED)
I32 = IntegerType(32)
ROWS_BY_8 = TensorType(Float32Type(), [DYNAMIC_INDEX, 8])


@pytest.mark.parametrize("member", list(E), ids=lambda e: e.value)
def test_encoding_attr_round_trips_every_member(member: QuantizationEncoding) -> None:
    attr = EncodingAttr.get(member)
    assert attr.encoding is member
    assert EncodingAttr.get(member.name) == attr
    assert EncodingAttr.get(member.value) == attr
    assert str(attr) == f"#quant.encoding<{member.name}>"


def test_encoding_attr_of_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown quantization encoding 'q9_k'"):
        EncodingAttr.get("q9_k")


@pytest.mark.parametrize("checkpoint_format", ["gptq", "gptq_v2"])
def test_gptq_attr_round_trips_a_config(checkpoint_format: str) -> None:
    config = QuantizationConfig("gptq", 3, -1, desc_act=True, sym=False)
    attr = GPTQConfigAttr.get(config, checkpoint_format)
    assert attr.config == config
    assert attr.checkpoint_format.data == checkpoint_format
    assert str(attr) == (
        "#quant.gptq<bits = 3, group_size = -1, desc_act = true, sym = false, "
        f"format = {checkpoint_format}>"
    )


def gptq_attr(bits=4, group_size=64, checkpoint_format="gptq") -> GPTQConfigAttr:
    return GPTQConfigAttr(
        IntAttr(bits),
        IntAttr(group_size),
        BoolAttr.from_bool(False),
        BoolAttr.from_bool(True),
        StringAttr(checkpoint_format),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 5}, "#quant.gptq bits must be one of [2, 3, 4, 8], got 5"),
        ({"bits": 16}, "#quant.gptq bits must be one of [2, 3, 4, 8], got 16"),
        ({"group_size": 0}, "#quant.gptq group_size must be -1 or positive, got 0"),
        ({"group_size": -8}, "#quant.gptq group_size must be -1 or positive, got -8"),
        ({"checkpoint_format": "awq"}, "#quant.gptq format must be one of gptq, gptq_v2, got awq"),
    ],
)
def test_gptq_attr_built_in_python_is_verified(kwargs: dict, message: str) -> None:
    # The parser reports these with a location; Python construction goes
    # through GPTQConfigAttr.verify.
    with pytest.raises(VerifyException) as info:
        gptq_attr(**kwargs)
    assert str(info.value) == message


def test_field_error_accepts_the_valid_values() -> None:
    for bits in (2, 3, 4, 8):
        assert GPTQConfigAttr.field_error("bits", bits) is None
    for group_size in (-1, 1, 128):
        assert GPTQConfigAttr.field_error("group_size", group_size) is None
    for checkpoint_format in ("gptq", "gptq_v2"):
        assert GPTQConfigAttr.field_error("format", checkpoint_format) is None


def build_module(ops_builder) -> ModuleOp:
    """A module with one function whose body `ops_builder(block)` fills."""
    x_type = TensorType(Float32Type(), [DYNAMIC_INDEX, 512])
    block = Block(arg_types=[x_type])
    ops_builder(block)
    fn = func.FuncOp("f", ([x_type], []), Region(block))
    return ModuleOp([fn])


def reparse(module: ModuleOp) -> ModuleOp:
    text = str(module)
    parsed = Parser(make_context(), text).parse_module()
    parsed.verify()
    assert str(parsed) == text
    return parsed


def test_gguf_ops_built_in_python_verify_and_reparse() -> None:
    def body(block: Block) -> None:
        w = WeightOp("linear.weight", [TensorType(UI8, [8, 288])], E.Q4_K, [8, 512])
        d = DequantizeOp(E.Q4_K, [w], TensorType(Float32Type(), [8, 512]))
        y = QMatmulOp(E.Q4_K, block.args[0], [w], ROWS_BY_8)
        block.add_ops([w, d, y, func.ReturnOp()])

    module = build_module(body)
    module.verify()
    text = str(reparse(module))
    assert 'quant.weight "linear.weight" #quant.encoding<q4_k> [8, 512] : tensor<8x288xui8>' in text
    assert "quant.qmatmul #quant.encoding<q4_k> %0, %1 : " in text


def test_gptq_ops_built_in_python_verify_and_reparse() -> None:
    config = GPTQConfigAttr.get(QuantizationConfig("gptq", 4, 128, desc_act=True), "gptq_v2")
    types = [
        TensorType(I32, [64, 8]),
        TensorType(I32, [4, 1]),
        TensorType(Float16Type(), [4, 8]),
        TensorType(I32, [512]),
    ]

    def body(block: Block) -> None:
        w = WeightOp("layer.weight", types, E.GPTQ, [8, 512], config)
        y = QMatmulOp(E.GPTQ, block.args[0], w.results, ROWS_BY_8, config=config)
        block.add_ops([w, y, func.ReturnOp()])

    module = build_module(body)
    module.verify()
    parsed = reparse(module)
    weight = next(op for op in parsed.walk() if isinstance(op, WeightOp))
    assert weight.logical_shape == (8, 512)
    assert weight.config is not None
    assert weight.config.config == QuantizationConfig("gptq", 4, 128, desc_act=True)


def test_a_weight_built_in_python_with_a_bad_shape_fails_verification() -> None:
    def body(block: Block) -> None:
        w = WeightOp("linear.weight", [TensorType(UI8, [8, 290])], E.Q4_K, [8, 512])
        block.add_ops([w, func.ReturnOp()])

    module = build_module(body)
    with pytest.raises(VerifyException, match=r"q4_k packed bytes for a 8x512 weight must be"):
        module.verify()


def test_float_weight_logical_shape_is_its_type() -> None:
    w = WeightOp("b", [TensorType(Float32Type(), [3, 4])])
    w.verify()
    assert w.logical_shape == (3, 4)
    assert w.encoding is None
