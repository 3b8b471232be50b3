"""A GGUF file written by llama.cpp (Q4_K_M: Q4_K, Q6_K, Q5_0, Q8_0 together) runs.

Every quantized tensor of tests/data/gguf/tiny-llama-q4_k_m.gguf (see the
README there for its provenance) is dequantized bit-identically to gguf-py
and multiplied through qmatmul, straight from the memory-mapped file, on the
default (vectorized) CPU pipeline and on the GPU's scalar lowering.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from kernel_checks import PIPELINES

from quantir.runtime.api import dequantize, qmatmul
from quantir.runtime.gguf import open_gguf

FILE = Path(__file__).resolve().parents[1] / "data" / "gguf" / "tiny-llama-q4_k_m.gguf"


@pytest.fixture(scope="module")
def model():
    with open_gguf(FILE) as m:
        yield m


def test_the_file_mixes_the_q4_k_m_types(model) -> None:
    kinds = {t.encoding.name for t in model.tensors if t.encoding is not None}
    assert {"q4_k", "q6_k", "q5_0", "q8_0"} <= kinds


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_quantized_tensor_runs(model, pipeline) -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for t in model.tensors:
        if t.encoding is None:
            continue
        packed = t.data  # memory-mapped uint8 [N, row bytes], not copied
        assert isinstance(packed, np.ndarray) and not packed.flags.owndata
        ref = gguf.quants.dequantize(packed, t.ggml_type)
        got = dequantize(t.encoding, packed, pipeline=pipeline)
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), t.name
        x = rng.standard_normal((3, ref.shape[1])).astype(np.float32)
        exact = x.astype(np.float64) @ ref.astype(np.float64).T
        if pipeline is None:
            # The default CPU path (int8 activations; tests/runtime/test_kernels_int8.py),
            # then the exact path one keyword away.
            y = qmatmul(t.encoding, x, packed)
            rel = np.linalg.norm(y - exact) / np.linalg.norm(exact)
            assert rel < 1e-2, (t.name, rel)
            y = qmatmul(t.encoding, x, packed, exact=True)
        else:
            y = qmatmul(t.encoding, x, packed, pipeline=pipeline)
        bound = 2 * ref.shape[1] * np.finfo(np.float32).eps * (np.abs(x) @ np.abs(ref).T)
        assert np.all(np.abs(y - exact) <= bound + 1e-30), t.name
        checked += 1
    assert checked == 16
