"""The public runtime API: `from quantir.runtime import dequantize, qmatmul, quantize`.

The eager functions take a GGUFTensor or a GPTQLinear, which know their own
encoding (and GPTQ config); an argument that contradicts the weight's own is
an error naming both. References: gguf-py's dequantizer (through
GGUFTensor.to_float32) and numpy matmul.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import quantir.runtime
from quantir.dialects.encoding import QuantizationConfig
from quantir.runtime import dequantize, qmatmul, quantize
from quantir.runtime.gguf import open_gguf
from quantir.runtime.gptq.rtn import quantize_gptq_rtn

EXAMPLE_GGUF = Path(__file__).resolve().parents[2] / "examples" / "tiny-llama-q4_k_m.gguf"


@pytest.fixture(scope="module")
def model():
    return open_gguf(EXAMPLE_GGUF)


def test_every_public_name_is_importable_and_documented() -> None:
    for name in quantir.runtime.__all__:
        value = getattr(quantir.runtime, name)
        assert (value.__doc__ or "").strip(), name
    assert dequantize.__module__ == "quantir.runtime.api"
    assert qmatmul.__module__ == "quantir.runtime.api"


def test_importing_quantir_runtime_stays_light() -> None:
    code = (
        "import sys, quantir.runtime; "
        "print(any(m.startswith(('llvmlite', 'quantir.compiler', 'quantir.runtime.api')) "
        "for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_quantize_is_the_function_under_every_spelling() -> None:
    import quantir.runtime.quantize as package

    weights = np.random.default_rng(1).standard_normal((2, 256)).astype(np.float32)
    expected = package.quantize("q4_k", weights)
    assert np.array_equal(quantize("q4_k", weights), expected)
    assert np.array_equal(quantir.runtime.quantize("q4_k", weights), expected)


@pytest.mark.parametrize("name", ["blk.0.ffn_up.weight", "blk.0.ffn_down.weight", "output.weight"])
def test_a_gguf_tensor_brings_its_encoding(model, name: str) -> None:
    tensor = model.tensor(name)
    reference = tensor.to_float32()  # gguf-py's dequantizer
    assert np.array_equal(dequantize(tensor), reference)
    assert np.array_equal(dequantize(tensor.encoding, tensor), reference)
    x = np.random.default_rng(2).standard_normal((3, tensor.shape[1])).astype(np.float32)
    y = qmatmul(tensor, x, exact=True)
    np.testing.assert_allclose(y, x @ reference.T, rtol=1e-4, atol=1e-4)
    assert np.array_equal(qmatmul(tensor.encoding.name, x, tensor), qmatmul(tensor, x))


def test_a_conflicting_encoding_names_both(model) -> None:
    tensor = model.tensor("blk.0.ffn_up.weight")  # Q4_K
    x = np.zeros((1, 256), np.float32)
    message = (
        "encoding='q6_k' conflicts with the encoding of GGUF tensor 'blk.0.ffn_up.weight', 'q4_k'"
    )
    with pytest.raises(ValueError, match=message):
        dequantize("q6_k", tensor)
    with pytest.raises(ValueError, match=message):
        qmatmul("q6_k", x, tensor)


def test_a_plain_gguf_tensor_is_refused_by_name(model) -> None:
    with pytest.raises(ValueError, match="'blk.0.ffn_norm.weight' is F32, not a quantized type"):
        dequantize(model.tensor("blk.0.ffn_norm.weight"))


def test_a_missing_weight_is_named() -> None:
    with pytest.raises(TypeError, match="dequantize: the packed weight is missing"):
        dequantize(np.zeros((1, 144), np.uint8))


def test_a_gptq_layer_brings_its_encoding_and_config() -> None:
    w = np.random.default_rng(3).standard_normal((64, 128)).astype(np.float32)
    layer = quantize_gptq_rtn(w, 4, 32, checkpoint_format="gptq")
    reference = dequantize("gptq", layer)
    assert np.array_equal(dequantize(layer), reference)
    x = np.random.default_rng(4).standard_normal((2, 128)).astype(np.float32)
    np.testing.assert_allclose(qmatmul(layer, x, exact=True), x @ reference.T, rtol=1e-4, atol=1e-4)
    with pytest.raises(
        ValueError,
        match=r"encoding='q4_k' conflicts with the encoding of "
        r"GPTQ layer 'linear', 'gptq'",
    ):
        qmatmul("q4_k", x, layer)
    other = QuantizationConfig("gptq", 8, 32)
    with pytest.raises(ValueError, match="differs from the layer's own"):
        dequantize(layer, config=other)


def test_the_eager_functions_document_the_weight_forms() -> None:
    for function in (dequantize, qmatmul):
        doc = inspect.getdoc(function)
        assert "GGUFTensor" in doc and "GPTQLinear" in doc
