"""Test-session setup: compiled kernels are cached in a per-session directory,
so tests neither read nor fill the user's ~/.cache/quantir."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_compile_cache(tmp_path_factory: pytest.TempPathFactory):
    if "QUANTIR_CACHE_DIR" not in os.environ:
        os.environ["QUANTIR_CACHE_DIR"] = str(tmp_path_factory.mktemp("quantir-cache"))
    yield


def pytest_addoption(parser: pytest.Parser) -> None:
    # tests/fuzz: how many mutated inputs per surface, from which seed (CI: a few).
    parser.addoption("--fuzz-cases", type=int, default=12, help="fuzz cases per surface")
    parser.addoption("--fuzz-seed", type=int, default=0, help="seed of the fuzz cases")
