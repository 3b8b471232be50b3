"""Finding upstream LLVM/MLIR 22's tools (Debian's `mlir-22-tools`, `llvm-22`).

Tests that need a tool skip where it is absent, except when
QUANTIR_REQUIRE_UPSTREAM=1 (set by .ci/run, which installs the tools):
there a missing tool fails the test, so CI never skips the cross-checks
silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VERSION = 22
LLVM_BIN = Path(f"/usr/lib/llvm-{VERSION}/bin")


def tool(name: str) -> str:
    """The path of upstream tool `name` ("mlir-opt", "llc", ...), or skip (fail in CI)."""
    found = shutil.which(f"{name}-{VERSION}")
    if found is None and (LLVM_BIN / name).is_file():
        found = str(LLVM_BIN / name)
    if found is None:
        message = (
            f"{name}-{VERSION} not found (apt-get install mlir-{VERSION}-tools llvm-{VERSION})"
        )
        if os.environ.get("QUANTIR_REQUIRE_UPSTREAM") == "1":
            pytest.fail(message + "; QUANTIR_REQUIRE_UPSTREAM=1 asks for it")
        pytest.skip(message)
    return found


def run(args: list[str], stdin: str | None = None) -> str:
    """Run a tool; fail the test with its stderr when it fails."""
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args[:3])} ... exited {result.returncode}:\n{result.stderr[:4000]}")
    return result.stdout
