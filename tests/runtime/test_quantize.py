"""quantir.runtime.quantize: byte-identical to ggml's reference quantizers.

Three kinds of evidence:
* golden vectors from ggml's own C (tests/data/quantize, see its README) for
  all ten formats, over inputs chosen to hit edge cases (signed zeros,
  subnormals, values that overflow fp16 scales or float32 squares, ties);
* gguf-py's quantizer, bit-identical to ggml for the 32-element formats on
  ordinary data, over many distributions drawn here;
* a dequantize round trip through gguf-py, bounding the error per format.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

import quantir.runtime.quantize.frontend as frontend
from quantir.dialects.encoding import QuantizationEncoding
from quantir.runtime.quantize import SUPPORTED_ENCODINGS, quantize

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "quantize" / "ggml_reference.npz"
LEGACY = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
ALL = tuple(e.value for e in SUPPORTED_ENCODINGS)


def _ggml_type(name: str) -> gguf.GGMLQuantizationType:
    return gguf.GGMLQuantizationType[name]


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def test_supported_encodings_are_the_ten_gguf_formats() -> None:
    assert set(ALL) == {
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    }  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_matches_ggml_reference_bytes(golden: dict[str, np.ndarray], name: str) -> None:
    inputs = golden["inputs"]
    expected = golden[name]
    got = quantize(name, inputs)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    mismatched = ~np.all(got == expected, axis=1)
    bad = sorted(set(golden["distribution"][mismatched]))
    assert not bad, f"{name}: rows differ from ggml for distributions {bad}"


def test_golden_inputs_cover_the_edge_cases(golden: dict[str, np.ndarray]) -> None:
    """Guard against the data file losing what makes it worth having."""
    x = golden["inputs"]
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert np.any(np.signbit(x) & (x == 0)), "negative zeros"
    assert np.any((x != 0) & (np.abs(x) < np.finfo(np.float32).tiny)), "subnormals"
    assert np.abs(x).max() > 1e37, "float32 squares overflow"
    for name in ALL:
        assert len(np.unique(golden[name], axis=0)) > len(x) // 2, name


def _distributions(rng: np.random.Generator, rows: int, k: int) -> dict[str, np.ndarray]:
    """Data on which gguf-py's 32-element quantizers agree with ggml.

    (They differ from ggml when a block's extreme value is zero and ggml's
    first-seen rule picks the other sign of zero than numpy does: sparse rows
    holding -0.0, all-zero blocks starting with -0.0. The golden vectors
    cover those.)
    """
    shape = (rows, k)
    row_scale = 10.0 ** rng.uniform(-6, 6, (rows, 1))
    sparse = rng.standard_normal(shape) * row_scale
    return {
        "normal": rng.standard_normal(shape),
        "scaled_normal": rng.standard_normal(shape) * row_scale,
        "uniform": rng.uniform(-1, 1, shape),
        "laplace": rng.laplace(0, 1, shape) * row_scale,
        "student_t": rng.standard_t(2, shape),
        "positive": rng.uniform(0.5, 3, shape),
        "negative": -rng.uniform(0.5, 3, shape),
        "offset": rng.standard_normal(shape) + rng.uniform(-4, 4, (rows, 1)),
        "sparse": np.where(rng.random(shape) < 0.2, sparse, 0.0),
        "half_integers": rng.integers(-20, 21, shape) / 2.0,
        "constant_rows": np.repeat(rng.standard_normal((rows, 1)), k, axis=1),
        "huge": rng.standard_normal(shape) * 1e30,
        "fp16_overflowing_scales": rng.standard_normal(shape) * 1e7,
        "outliers": np.where(rng.random(shape) < 0.01, 1e3, rng.standard_normal(shape)),
    }


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_formats_match_gguf_py(name: str) -> None:
    rng = np.random.default_rng(0x5EED + LEGACY.index(name))
    for dist, values in _distributions(rng, rows=48, k=1024).items():
        x = values.astype(np.float32)
        with np.errstate(over="ignore"):  # gguf-py's own fp16 casts of huge scales
            expected = gguf_quantize(x, _ggml_type(name))
        got = quantize(name, x)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), f"{name} differs from gguf-py on {dist}"


def test_nd_input_matches_gguf_py_layout() -> None:
    x = np.random.default_rng(3).standard_normal((3, 4, 256)).astype(np.float32)
    got = quantize("q8_0", x)
    assert got.shape == (3, 4, 8 * 34)
    assert np.array_equal(got, gguf_quantize(x, _ggml_type("Q8_0")))


# Largest |error| of one element divided by the largest |weight| of its block:
# the legacy bounds follow from the formats (half a step, or a full step where
# the signed formats clip one end, plus fp16 rounding of d); the K-quant ones
# are what ggml's scale search achieves on normal and uniform data, with margin.
MAX_ERROR_PER_BLOCK_ABSMAX = {
    "Q4_0": 0.13, "Q4_1": 0.07, "Q5_0": 0.065, "Q5_1": 0.034, "Q8_0": 0.0045,
    "Q2_K": 0.5, "Q3_K": 0.35, "Q4_K": 0.15, "Q5_K": 0.08, "Q6_K": 0.03,
}  # fmt: skip
RELATIVE_RMS_ERROR = {
    "Q4_0": 0.1, "Q4_1": 0.09, "Q5_0": 0.05, "Q5_1": 0.045, "Q8_0": 0.007,
    "Q2_K": 0.35, "Q3_K": 0.18, "Q4_K": 0.09, "Q5_K": 0.045, "Q6_K": 0.022,
}  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_round_trip_error_is_within_format_bounds(name: str) -> None:
    rng = np.random.default_rng(11)
    epb = QuantizationEncoding.parse(name).elements_per_block
    for x in (rng.standard_normal((32, 1024)), rng.uniform(-3, 1, (32, 1024))):
        x = x.astype(np.float32)
        restored = gguf_dequantize(quantize(name, x), _ggml_type(name))
        error = np.abs(restored - x)
        block_absmax = np.abs(x).reshape(-1, epb).max(axis=1)
        worst = (error.reshape(-1, epb).max(axis=1) / block_absmax).max()
        assert worst <= MAX_ERROR_PER_BLOCK_ABSMAX[name], (name, worst)
        rms = np.sqrt(np.mean(error.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2))
        assert rms <= RELATIVE_RMS_ERROR[name], (name, rms)


@pytest.mark.parametrize("name", ALL)
def test_rows_and_chunks_are_independent(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Chunk boundaries, 1-D rows, strided and float16/float64 inputs change nothing."""
    x = np.random.default_rng(2).standard_normal((6, 512)).astype(np.float32)
    whole = quantize(name, x)
    assert np.array_equal(quantize(name, x[4]), whole[4])
    monkeypatch.setattr(frontend, "CHUNK_ELEMENTS", 300)  # 9 or 1 block(s) per chunk
    assert np.array_equal(quantize(name, x), whole)
    strided = np.asfortranarray(np.repeat(x, 2, axis=0)[::2])
    assert np.array_equal(quantize(QuantizationEncoding.parse(name), strided), whole)
    assert np.array_equal(quantize(name, x.astype(np.float64)), whole)
    assert np.array_equal(quantize(name, x.astype(">f4")), whole)
    half = x.astype(np.float16)
    assert np.array_equal(quantize(name, half), quantize(name, half.astype(np.float32)))


def test_empty_inputs_give_empty_outputs() -> None:
    assert quantize("q4_k", np.zeros((0, 512), np.float32)).shape == (0, 288)
    assert quantize("q4_0", np.zeros((3, 0), np.float32)).shape == (3, 0)


@pytest.mark.parametrize(
    ("dtype", "word"),
    [
        (np.int32, "int32"),
        (np.uint8, "uint8"),
        (np.bool_, "bool"),
        (np.complex64, "complex64"),
    ],
)
def test_rejects_non_float_dtypes(dtype: type, word: str) -> None:
    with pytest.raises(ValueError, match=f"float32.*{word}"):
        quantize("q4_k", np.zeros((2, 256), dtype=dtype))


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="long double is float64 here")
def test_rejects_extended_precision_floats() -> None:
    with pytest.raises(ValueError, match=f"got dtype {np.dtype(np.longdouble).name}"):
        quantize("q8_0", np.zeros((1, 32), dtype=np.longdouble))


def test_rejects_k_not_a_multiple_of_the_block() -> None:
    with pytest.raises(ValueError, match=r"K=100 .*multiple of 32"):
        quantize("q8_0", np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match=r"q6_k.*K=288 .*multiple of 256"):
        quantize("Q6_K", np.zeros((2, 288), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rejects_non_finite_weights_naming_the_row(bad: float) -> None:
    x = np.ones((2, 3, 256), np.float32)
    x[1, 2, 77] = bad
    with pytest.raises(ValueError, match=r"row \(1, 2\).*column 77"):
        quantize("q4_k", x)
    with pytest.raises(ValueError, match=r"non-finite.*column 77"):
        quantize("q4_k", x[1, 2])


def test_rejects_float64_that_overflows_float32() -> None:
    x = np.ones((4, 32))
    x[3, 5] = 1e300
    with pytest.raises(ValueError, match=r"row \(3,\).*column 5.*float32"):
        quantize("q8_0", x)


def test_rejects_gptq_and_unknown_encodings() -> None:
    x = np.zeros((1, 256), np.float32)
    with pytest.raises(ValueError, match="GPTQ is not a GGUF block format"):
        quantize(QuantizationEncoding.GPTQ, x)
    with pytest.raises(ValueError, match="unknown quantization encoding 'q7_k'"):
        quantize("q7_k", x)
    with pytest.raises(TypeError, match="QuantizationEncoding"):
        quantize(4, x)  # type: ignore[arg-type]


def test_rejects_non_arrays_and_scalars() -> None:
    with pytest.raises(TypeError, match="numpy.ndarray"):
        quantize("q4_0", [0.0] * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0-d"):
        quantize("q4_0", np.array(1.0, dtype=np.float32))
