"""Shared pieces of the runtime tests: the qmatmul error check and background compiling.

* ``assert_qmatmul_close``: the per-element float32 error bound of qmatmul,
  derived in the docstring of ``test_kernels_gguf.py`` (GPTQ uses the same
  bound with its own R).
* Background compiling. The kernel tests compile a few hundred distinct
  kernels (every encoding, GPTQ configuration, x rank and K, for two
  pipelines); compiling takes longer than running them. A test module that
  defines ``warm_cases()`` (zero-argument callables that compile what its
  tests will ask for, in test order) gets a helper process that compiles the
  same kernels in reverse order while this process works forward. Both fill
  the session's disk cache (tests/conftest.py points QUANTIR_CACHE_DIR at a
  fresh directory), so the work is split over two cores and every kernel is
  still compiled in this session from the current code. The helper only
  warms the cache: every result is computed and checked in this process,
  which compiles anything the helper has not reached. QUANTIR_TEST_NO_WARM=1
  turns the helper off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from quantir.runtime import cache

# -- the qmatmul error bound ---------------------------------------------------------

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23
BOUND_C = 3.1
"""c of |err| <= c * (K + 2) * eps32 * sum_k |x_k| R_k (see test_kernels_gguf.py)."""
UNDERFLOW_PER_OP = 2.0**-149
"""Absolute error one float32 operation may add when its result is subnormal."""


def qmatmul_bound(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The per-element error bound [..., N] for x [..., K] and R [N, K] (float64)."""
    k = x.shape[-1]
    t = np.abs(x.astype(np.float64)) @ r.T
    return BOUND_C * (k + 2) * EPS32 * t + (2 * k + 4) * UNDERFLOW_PER_OP


def check_qmatmul_close(y: np.ndarray, x: np.ndarray, w: np.ndarray, r: np.ndarray) -> None:
    """Assert y (float32) = x @ w.T within the bound, element by element.

    w [N, K] is the reference dequantized weight (float32, exact), r [N, K] its
    per-element range magnitude R (see test_kernels_gguf.py).
    """
    assert y.dtype == np.float32
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    assert y.shape == ref.shape, f"result shape {y.shape}, expected {ref.shape}"
    err = np.abs(y.astype(np.float64) - ref)
    bound = qmatmul_bound(x, r)
    bad = ~(err <= bound)  # NaN in y counts as a failure
    if bad.any():
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} elements outside the bound; first at {idx}: "
            f"got {y[idx]!r}, float64 reference {ref[idx]!r}, |err| {err[idx]:.3e} > "
            f"bound {bound[idx]:.3e}"
        )


@pytest.fixture
def assert_qmatmul_close() -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]:
    return check_qmatmul_close


# -- background compiling ---------------------------------------------------------------

_WARM_SCRIPT = """
import importlib.util, os, sys, warnings
warnings.simplefilter("ignore")
try:
    os.nice(5)  # the test process comes first
except OSError:
    pass
for i, path in enumerate(reversed(sys.argv[1:])):
    sys.path.insert(0, os.path.dirname(path))  # as pytest does: sibling helper modules
    spec = importlib.util.spec_from_file_location(f"_quantir_warm_{i}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    for warm in reversed(list(module.warm_cases())):
        try:
            warm()
        except Exception:
            pass  # the test that needs this kernel reports the error
"""

_WARM_PATHS = pytest.StashKey[list]()
WARM_MIN_TESTS = 50
"""A module's kernels are compiled ahead only when this many of its tests run
(a run of a few selected tests would not wait for most of them)."""


def pytest_collection_finish(session) -> None:
    selected: dict[str, int] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "warm_cases"):
            selected[module.__file__] = selected.get(module.__file__, 0) + 1
    session.config.stash[_WARM_PATHS] = [p for p, n in selected.items() if n >= WARM_MIN_TESTS]


@pytest.fixture(scope="session", autouse=True)
def _background_compile(request):
    paths = request.config.stash.get(_WARM_PATHS, [])
    if (
        not paths
        or cache.cache_dir() is None  # nowhere to share compiled kernels
        or os.environ.get("QUANTIR_TEST_NO_WARM")
        or os.environ.get("PYTEST_XDIST_WORKER")  # already parallel
    ):
        yield
        return
    proc = subprocess.Popen(
        [sys.executable, "-c", _WARM_SCRIPT, *paths],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
