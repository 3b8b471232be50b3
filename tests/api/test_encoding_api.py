"""The public encoding API (quantir.dialects.encoding), property by property:
QuantizationEncoding, BlockParameters, QuantizationConfig, and the GPTQ helpers
beside them.

GGUF block parameters are cross-checked against gguf-py's GGML_QUANT_SIZES
(ggml's own table), not against numbers copied into this file.
"""

from __future__ import annotations

import dataclasses
import enum

import pytest
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

import quantir.dialects.encoding as encoding_module
import quantir.dialects.quant as quant_module
import quantir.dialects.weight as weight_module
from quantir.dialects.encoding import (
    BlockParameters,
    NoBlockParametersError,
    QuantizationConfig,
    QuantizationEncoding,
    check_checkpoint_format,
    zero_point_offset,
)

E = QuantizationEncoding
GGUF = [e for e in E if e is not E.GPTQ]

# --------------------------------------------------------------------------
# QuantizationEncoding
# --------------------------------------------------------------------------


def test_the_contract_members_come_first_with_upper_case_values() -> None:
    members = list(E.__members__)
    assert members[:5] == ["Q4_0", "Q4_K", "Q5_K", "Q6_K", "GPTQ"]
    assert set(members[5:]) == {"Q8_0", "Q5_0", "Q4_1", "Q5_1", "Q2_K", "Q3_K"}
    assert len(E) == 11
    for member_name, member in E.__members__.items():
        assert member.value == member_name
        assert E(member_name) is member
        assert E[member_name] is member


def test_it_is_a_plain_enum() -> None:
    assert issubclass(E, enum.Enum)
    assert isinstance(E.Q4_K, E)
    assert {E.Q4_K: 1}[E("Q4_K")] == 1  # hashable, one object per member


@pytest.mark.parametrize("member", list(E), ids=lambda e: e.value)
def test_name_is_lower_case_and_str_is_the_enum_default(member: QuantizationEncoding) -> None:
    assert member.name == member.value.lower()
    assert member.name.islower()
    assert str(member) == f"QuantizationEncoding.{member.value}"
    assert repr(member) == f"<QuantizationEncoding.{member.value}: '{member.value}'>"


@pytest.mark.parametrize("text", ["q4_k", "Q4_K", "q4_K"])
def test_parse_accepts_any_case(text: str) -> None:
    assert E.parse(text) is E.Q4_K


def test_parse_of_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown quantization encoding 'q9_k'") as info:
        E.parse("q9_k")
    for member in E:
        assert member.name in str(info.value)


def test_parse_passes_an_encoding_through_and_refuses_other_types() -> None:
    assert E.parse(E.GPTQ) is E.GPTQ
    with pytest.raises(TypeError, match="a QuantizationEncoding or its name, got 42"):
        E.parse(42)  # type: ignore[arg-type]


def test_lower_case_is_not_a_member_key() -> None:
    # Lookup by member key stays the enum's; parse() is the lenient one.
    with pytest.raises(KeyError):
        E["q4_k"]
    with pytest.raises(ValueError):
        E("q4_k")


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (E.Q4_0, (32, 18)),
        (E.Q4_K, (256, 144)),
        (E.Q5_K, (256, 176)),
        (E.Q6_K, (256, 210)),
    ],
    ids=lambda x: getattr(x, "value", None),
)
def test_block_parameters_of_the_spec(member: QuantizationEncoding, expected) -> None:
    assert member.block_parameters == BlockParameters(*expected)


@pytest.mark.parametrize("member", GGUF, ids=lambda e: e.value)
def test_block_parameters_match_ggml(member: QuantizationEncoding) -> None:
    elements, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[member.value]]
    params = member.block_parameters
    assert isinstance(params, BlockParameters)
    assert params == BlockParameters(elements_per_block=elements, block_size=type_size)
    assert member.elements_per_block == elements
    assert member.block_size == type_size  # bytes per block
    assert member.is_gguf is True


@pytest.mark.parametrize("member", GGUF, ids=lambda e: e.value)
def test_packed_row_bytes(member: QuantizationEncoding) -> None:
    k = 2 * 256
    assert member.packed_row_bytes(k) == k // member.elements_per_block * member.block_size
    with pytest.raises(ValueError, match=rf"K={k + 16} is not a multiple of"):
        member.packed_row_bytes(k + 16)


def test_gptq_is_not_gguf() -> None:
    assert E.GPTQ.is_gguf is False


@pytest.mark.parametrize("prop", ["block_parameters", "elements_per_block", "block_size"])
def test_gptq_block_parameters_error_names_the_reason(prop: str) -> None:
    with pytest.raises(NoBlockParametersError) as info:
        getattr(E.GPTQ, prop)
    message = str(info.value)
    # str() is the plain message (a bare KeyError would quote it).
    assert message == (
        "GPTQ has no fixed block parameters: its packed layout depends on its "
        "QuantizationConfig (bits, group_size)"
    )


def test_gptq_block_parameters_error_is_also_a_key_error_and_a_value_error() -> None:
    # Code written against the mirrored API catches a KeyError.
    with pytest.raises(KeyError):
        E.GPTQ.block_parameters  # noqa: B018
    with pytest.raises(ValueError):
        E.GPTQ.block_parameters  # noqa: B018
    assert issubclass(NoBlockParametersError, KeyError)
    assert issubclass(NoBlockParametersError, ValueError)


def test_gptq_has_no_packed_row_bytes() -> None:
    with pytest.raises(KeyError, match="no fixed block parameters"):
        E.GPTQ.packed_row_bytes(256)


# --------------------------------------------------------------------------
# BlockParameters
# --------------------------------------------------------------------------


def test_block_parameters_is_a_frozen_dataclass() -> None:
    params = BlockParameters(256, 144)
    assert dataclasses.is_dataclass(params)
    assert [f.name for f in dataclasses.fields(params)] == ["elements_per_block", "block_size"]
    assert params == BlockParameters(elements_per_block=256, block_size=144)
    assert hash(params) == hash(BlockParameters(256, 144))
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.block_size = 1  # type: ignore[misc]


# --------------------------------------------------------------------------
# QuantizationConfig
# --------------------------------------------------------------------------


def test_config_fields_and_defaults() -> None:
    config = QuantizationConfig("gptq", 4, 128)
    assert [f.name for f in dataclasses.fields(config)] == [
        "quant_method",
        "bits",
        "group_size",
        "desc_act",
        "sym",
    ]
    assert (config.quant_method, config.bits, config.group_size) == ("gptq", 4, 128)
    assert config.desc_act is False
    assert config.sym is False
    assert config == QuantizationConfig(
        quant_method="gptq", bits=4, group_size=128, desc_act=False, sym=False
    )


def test_config_is_frozen_and_hashable() -> None:
    config = QuantizationConfig("gptq", 4, 128, desc_act=True, sym=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bits = 8  # type: ignore[misc]
    assert {config: 1}[QuantizationConfig("gptq", 4, 128, True, True)] == 1


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group_size", [-1, 1, 32, 128])
@pytest.mark.parametrize("flags", [(False, False), (True, True), (True, False)])
def test_valid_configs(bits: int, group_size: int, flags: tuple[bool, bool]) -> None:
    config = QuantizationConfig("gptq", bits, group_size, *flags)
    assert (config.bits, config.group_size, config.desc_act, config.sym) == (
        bits,
        group_size,
        *flags,
    )


@pytest.mark.parametrize("value", ["awq", "GPTQ", "", None, 4])
def test_bad_quant_method(value) -> None:
    with pytest.raises(ValueError, match=r"QuantizationConfig\.quant_method must be 'gptq'"):
        QuantizationConfig(value, 4, 128)


@pytest.mark.parametrize("value", [0, 1, 5, 6, 16, -4, "4", 4.0, True, None])
def test_bad_bits(value) -> None:
    with pytest.raises(
        ValueError, match=r"QuantizationConfig\.bits must be one of \[2, 3, 4, 8\], got"
    ) as info:
        QuantizationConfig("gptq", value, 128)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [0, -2, -128, "128", 128.0, True, None])
def test_bad_group_size(value) -> None:
    with pytest.raises(
        ValueError, match=r"QuantizationConfig\.group_size must be -1 or a positive integer, got"
    ) as info:
        QuantizationConfig("gptq", 4, value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("field", ["desc_act", "sym"])
@pytest.mark.parametrize("value", [0, 1, "true", None])
def test_bad_flags(field: str, value) -> None:
    with pytest.raises(
        ValueError, match=rf"QuantizationConfig\.{field} must be a bool \(True or False\), got"
    ):
        QuantizationConfig("gptq", 4, 128, **{field: value})


def test_num_groups() -> None:
    assert QuantizationConfig("gptq", 4, 128).num_groups(4096) == 32
    assert QuantizationConfig("gptq", 4, -1).num_groups(4096) == 1
    assert QuantizationConfig("gptq", 4, 128).effective_group_size(4096) == 128
    assert QuantizationConfig("gptq", 4, -1).effective_group_size(4096) == 4096


def test_num_groups_checks_that_group_size_divides_k() -> None:
    with pytest.raises(ValueError, match=r"group_size 128 does not divide in_features \(K\) 1000"):
        QuantizationConfig("gptq", 4, 128).num_groups(1000)
    with pytest.raises(ValueError, match=r"in_features \(K\) must be positive, got 0"):
        QuantizationConfig("gptq", 4, -1).num_groups(0)


def test_checkpoint_formats() -> None:
    assert check_checkpoint_format("gptq") == "gptq"
    assert check_checkpoint_format("gptq_v2") == "gptq_v2"
    # v1 stores the zero point minus one; v2 stores it as is.
    assert zero_point_offset("gptq") == 1
    assert zero_point_offset("gptq_v2") == 0
    for bad in ("awq", "GPTQ", "v2"):
        with pytest.raises(ValueError, match=r"must be one of \['gptq', 'gptq_v2'\]"):
            zero_point_offset(bad)


# --------------------------------------------------------------------------
# Where the API lives
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("BlockParameters", encoding_module),
        ("QuantizationConfig", encoding_module),
        ("QuantizationEncoding", encoding_module),
        ("NoBlockParametersError", encoding_module),
        ("Weight", weight_module),
        ("DType", weight_module),
        ("DeviceRef", weight_module),
    ],
)
def test_quant_module_exports_the_public_api(name: str, home) -> None:
    assert name in quant_module.__all__
    assert getattr(quant_module, name) is getattr(home, name)
