"""The public quantization API: encodings, block parameters, GPTQ configuration.

It mirrors the quantization module of a well-known graph compiler
(``QuantizationEncoding``, ``BlockParameters``, ``QuantizationConfig``) with
two deliberate differences: ``QuantizationConfig`` validates its fields on
construction, and asking GPTQ for block parameters raises an error that says
why instead of a bare ``KeyError``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from quantir.dialects.errors import QuantirError

__all__ = [
    "BlockParameters",
    "GPTQ_BITS",
    "GPTQ_CHECKPOINT_FORMATS",
    "GPTQ_TENSOR_NAMES",
    "NoBlockParametersError",
    "PackedLayoutError",
    "PackedPart",
    "QuantizationConfig",
    "QuantizationEncoding",
    "check_checkpoint_format",
    "codes_per_run",
    "gptq_config_text",
    "packed_layout",
    "zero_point_offset",
]


class NoBlockParametersError(ValueError, KeyError, QuantirError):
    """Raised when an encoding has no fixed block layout (GPTQ).

    It is a ValueError that names the reason, and also a KeyError so that code
    written against the mirrored API (which raises a bare KeyError) still
    catches it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class BlockParameters:
    """Shape of one encoded block: how many weights it holds and its size in bytes."""

    elements_per_block: int
    block_size: int
    """Number of BYTES in one encoded block."""


GPTQ_BITS = (2, 3, 4, 8)
GPTQ_CHECKPOINT_FORMATS = ("gptq", "gptq_v2")
GPTQ_TENSOR_NAMES = ("qweight", "qzeros", "scales", "g_idx")
"""The tensors of one GPTQ weight, in the order ops and APIs take them."""


class PackedLayoutError(ValueError, QuantirError):
    """A logical size that a packed layout cannot hold.

    ``axis`` is "K", "N" or "group_size", ``size`` the offending size and
    ``multiple`` what it must be a multiple of (elements per block, codes per
    run, or the group size). The message is the dialect verifier's wording;
    layers whose own wording is part of their interface rebuild it from the
    fields.
    """

    def __init__(self, message: str, axis: str, size: int, multiple: int) -> None:
        super().__init__(message)
        self.axis = axis
        self.size = size
        self.multiple = multiple


def codes_per_run(bits: int) -> tuple[int, int]:
    """(codes, words) of the shortest run of GPTQ codes that fills whole 32-bit words.

    (16, 1) for 2 bits, (32, 3) for 3 bits, (8, 1) for 4 bits, (4, 1) for 8.
    K (packed into qweight) and N (packed into qzeros) must be whole runs.
    """
    codes = 32 // math.gcd(32, bits)
    return codes, codes * bits // 32


@dataclass(frozen=True)
class QuantizationConfig:
    """Parameters of a GPTQ-style quantization.

    ``group_size`` is -1 (one group spanning all of K) or a positive number of
    input features sharing one scale and zero point. Whether it divides K is
    checked where K is known (the dialect verifier, the checkpoint loader).
    How stored zero points are read (checkpoint_format "gptq", the v1
    format where the stored zero is one less than the real one, or
    "gptq_v2") belongs to the checkpoint, not to this config: it travels
    beside it (the dialect's #quant.gptq attribute, the runtime's
    ``checkpoint_format=`` keyword).
    """

    quant_method: str
    bits: int
    group_size: int
    desc_act: bool = False
    sym: bool = False

    def __post_init__(self) -> None:
        if self.quant_method != "gptq":
            raise ValueError(
                f"QuantizationConfig.quant_method must be 'gptq', got {self.quant_method!r}"
            )
        if type(self.bits) is not int or self.bits not in GPTQ_BITS:
            raise ValueError(
                f"QuantizationConfig.bits must be one of {list(GPTQ_BITS)}, got {self.bits!r}"
            )
        if type(self.group_size) is not int or not (self.group_size == -1 or self.group_size > 0):
            raise ValueError(
                "QuantizationConfig.group_size must be -1 or a positive integer, "
                f"got {self.group_size!r}"
            )
        for field_name in ("desc_act", "sym"):
            if not isinstance(getattr(self, field_name), bool):
                raise ValueError(
                    f"QuantizationConfig.{field_name} must be a bool (True or False), "
                    f"got {getattr(self, field_name)!r}"
                )

    def num_groups(self, in_features: int) -> int:
        """Number of scale/zero groups along K; checks that group_size divides K."""
        if in_features <= 0:
            raise ValueError(f"GPTQ in_features (K) must be positive, got {in_features}")
        if self.group_size == -1:
            return 1
        if in_features % self.group_size:
            raise PackedLayoutError(
                f"GPTQ group_size {self.group_size} does not divide in_features (K) "
                f"{in_features}: expected K to be a multiple of group_size",
                "group_size",
                in_features,
                self.group_size,
            )
        return in_features // self.group_size

    def effective_group_size(self, in_features: int) -> int:
        """The group length along K (K itself when group_size is -1)."""
        return in_features if self.group_size == -1 else self.group_size

    def in_features_of(self, qweight_rows: int) -> int | None:
        """K of a qweight with this many rows (K*bits/32 words per column), or
        None when the rows are not whole runs of codes."""
        codes, words = codes_per_run(self.bits)
        if qweight_rows % words:
            return None
        return qweight_rows // words * codes

    def packed_words(self, size: int, axis: str) -> int:
        """Words holding `size` codes along K (qweight rows) or N (qzeros columns)."""
        codes, words = codes_per_run(self.bits)
        if size % codes:
            what = "K into 32-bit words" if axis == "K" else "zero points along N into 32-bit words"
            raise PackedLayoutError(
                f"GPTQ {self.bits}-bit packs {what}, {axis}={size} times {self.bits} "
                "is not a multiple of 32",
                axis,
                size,
                codes,
            )
        return size // codes * words


def check_checkpoint_format(checkpoint_format: str) -> str:
    """Validate a GPTQ zero-point format name and return it."""
    if checkpoint_format not in GPTQ_CHECKPOINT_FORMATS:
        raise ValueError(
            f"GPTQ checkpoint_format must be one of {list(GPTQ_CHECKPOINT_FORMATS)}, "
            f"got {checkpoint_format!r}"
        )
    return checkpoint_format


def zero_point_offset(checkpoint_format: str) -> int:
    """What to add to a stored GPTQ zero point to get the real one."""
    return 1 if check_checkpoint_format(checkpoint_format) == "gptq" else 0


# (elements per block, bytes per block) of each GGUF block format, as ggml
# defines them (GGML_QUANT_SIZES in gguf-py).
_GGUF_BLOCKS: dict[str, BlockParameters] = {
    "Q4_0": BlockParameters(32, 18),
    "Q4_K": BlockParameters(256, 144),
    "Q5_K": BlockParameters(256, 176),
    "Q6_K": BlockParameters(256, 210),
    "Q8_0": BlockParameters(32, 34),
    "Q5_0": BlockParameters(32, 22),
    "Q4_1": BlockParameters(32, 20),
    "Q5_1": BlockParameters(32, 24),
    "Q2_K": BlockParameters(256, 84),
    "Q3_K": BlockParameters(256, 110),
}


class QuantizationEncoding(enum.Enum):
    """A packed weight format.

    The first five members (Q4_0, Q4_K, Q5_K, Q6_K, GPTQ) keep their order
    and behaviour; further GGUF block formats follow them. docs/block-formats.md
    describes every block format.
    """

    Q4_0 = "Q4_0"
    Q4_K = "Q4_K"
    Q5_K = "Q5_K"
    Q6_K = "Q6_K"
    GPTQ = "GPTQ"
    Q8_0 = "Q8_0"
    Q5_0 = "Q5_0"
    Q4_1 = "Q4_1"
    Q5_1 = "Q5_1"
    Q2_K = "Q2_K"
    Q3_K = "Q3_K"

    @property
    def block_parameters(self) -> BlockParameters:
        params = _GGUF_BLOCKS.get(self.value)
        if params is None:
            raise NoBlockParametersError(
                f"{self.value} has no fixed block parameters: its packed layout "
                "depends on its QuantizationConfig (bits, group_size)"
            )
        return params

    @property
    def elements_per_block(self) -> int:
        return self.block_parameters.elements_per_block

    @property
    def block_size(self) -> int:
        """Bytes per encoded block."""
        return self.block_parameters.block_size

    @property
    def is_gguf(self) -> bool:
        return self.value in _GGUF_BLOCKS

    # `name` is overridden to the lower-case spelling used in IR and files
    # ("q4_k"); str() keeps the enum default ("QuantizationEncoding.Q4_K").
    @property
    def name(self) -> str:  # type: ignore[override]
        return self.value.lower()

    @classmethod
    def parse(cls, text: str | QuantizationEncoding) -> QuantizationEncoding:
        """Look an encoding up by name, in any case ("q4_k", "Q4_K"); an encoding is itself."""
        if isinstance(text, cls):
            return text
        if not isinstance(text, str):
            raise TypeError(f"encoding must be a QuantizationEncoding or its name, got {text!r}")
        try:
            return cls(text.upper())
        except ValueError:
            names = ", ".join(e.name for e in cls)
            raise ValueError(
                f"unknown quantization encoding {text!r}: expected one of {names}"
            ) from None

    def packed_row_bytes(self, in_features: int) -> int:
        """Bytes of one packed row of K logical weights (GGUF encodings)."""
        epb = self.elements_per_block
        if in_features % epb:
            raise PackedLayoutError(
                f"{self.name} packs K in blocks of {epb} weights, K={in_features} "
                f"is not a multiple of {epb}",
                "K",
                in_features,
                epb,
            )
        return in_features // epb * self.block_size

    def row_elements(self, row_bytes: int) -> int | None:
        """K of a packed row of `row_bytes` bytes, or None when they are not whole blocks."""
        if row_bytes % self.block_size:
            return None
        return row_bytes // self.block_size * self.elements_per_block


@dataclass(frozen=True)
class PackedPart:
    """One stored tensor of a packed [N, K] weight."""

    name: str
    """"" for GGUF (the weight itself), else the GPTQ tensor name ("qweight", ...)."""
    shape: tuple[int | None, ...]
    """None where the size depends on an N that was not given."""
    dtype: str
    """The numpy name of the stored element type ("uint8", "int32", "float16")."""


def packed_layout(
    encoding: QuantizationEncoding, config: QuantizationConfig | None, n: int | None, k: int
) -> tuple[PackedPart, ...]:
    """The stored tensors of a logical [N, K] weight: the one packed-layout rule.

    GGUF: uint8 [N, K / elements_per_block * block_size]. GPTQ (which needs
    ``config``): qweight int32 [K*bits/32, N], qzeros int32 [G, N*bits/32],
    scales float16 [G, N] and g_idx int32 [K], with G groups along K. ``n`` is
    None when N is not known. Raises PackedLayoutError when K, the group size
    or N does not fit (checked in that order).
    """
    if encoding.is_gguf:
        return (PackedPart("", (n, encoding.packed_row_bytes(k)), "uint8"),)
    if config is None:
        raise ValueError("GPTQ's packed layout follows from a QuantizationConfig; none given")
    qweight_rows = config.packed_words(k, "K")
    groups = config.num_groups(k)
    zero_cols = None if n is None else config.packed_words(n, "N")
    return (
        PackedPart("qweight", (qweight_rows, n), "int32"),
        PackedPart("qzeros", (groups, zero_cols), "int32"),
        PackedPart("scales", (groups, n), "float16"),
        PackedPart("g_idx", (k,), "int32"),
    )


def gptq_config_text(
    bits: int, group_size: int, desc_act: bool, sym: bool, checkpoint_format: str
) -> str:
    """The parameters of a `#quant.gptq` attribute as IR text (the one spelling of it):
    `<bits = 4, group_size = 128, desc_act = false, sym = true, format = gptq>`."""
    return (
        f"<bits = {bits}, group_size = {group_size}, desc_act = {str(desc_act).lower()}, "
        f"sym = {str(sym).lower()}, format = {checkpoint_format}>"
    )
