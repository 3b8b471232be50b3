"""A missing upstream tool skips its test, except in CI (QUANTIR_REQUIRE_UPSTREAM=1),
where it fails: the cross-checks are never skipped silently there."""

from __future__ import annotations

import pytest
from upstream_tools import tool


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTIR_REQUIRE_UPSTREAM", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-22 not found"):
        tool("no-such-tool")


def test_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTIR_REQUIRE_UPSTREAM", "1")
    with pytest.raises(pytest.fail.Exception, match="QUANTIR_REQUIRE_UPSTREAM=1"):
        tool("no-such-tool")
