"""One base class for quantir's errors (README.md, "Errors").

Each documented kind derives from QuantirError and from the builtin its
table row names, is importable from quantir.runtime, and is in the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import quantir.runtime
from quantir.dialects.broadcasting import BroadcastError
from quantir.dialects.encoding import PackedLayoutError
from quantir.dialects.errors import QuantirError
from quantir.runtime.cli import CommandError
from quantir.runtime.cuda import CudaError, CudaUnavailable
from quantir.runtime.gguf.errors import GGUFFormatError, QuantizeError, UnsupportedTensorTypeError
from quantir.runtime.host_plan import PlanError

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")

DOCUMENTED = {
    "UserError": None,
    "BufferError": ValueError,
    "WeightMismatchError": ValueError,
    "MissingWeightError": ValueError,
    "GGUFError": ValueError,
    "GPTQFormatError": ValueError,
    "DeviceUnavailableError": RuntimeError,
}


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_documented_errors_share_the_base(name):
    error = getattr(quantir.runtime, name)
    assert issubclass(error, QuantirError)
    if DOCUMENTED[name] is not None:
        assert issubclass(error, DOCUMENTED[name])
    assert f"`{name}`" in README
    assert quantir.runtime.QuantirError is QuantirError


@pytest.mark.parametrize(
    "error",
    [
        BroadcastError,
        PackedLayoutError,
        CommandError,
        CudaError,
        CudaUnavailable,
        GGUFFormatError,
        QuantizeError,
        UnsupportedTensorTypeError,
        PlanError,
    ],
)
def test_other_raised_errors_share_the_base(error):
    assert issubclass(error, QuantirError)


def test_readme_lists_the_exit_statuses():
    section = README[README.index("## Errors") :]
    for status in ("| 0 |", "| 1 |", "| 2 |", "| 130 |"):
        assert status in section
